"""What goes in and out: import and export jobs, frozen dataset snapshots and their consensus pairs."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.models import Axis, Comparison, Judgment, Side
from projects.models import Project


class DatasetSnapshot(models.Model):
    """A frozen selection of consensus pairs: what training and export consume.

    Frozen once its `content_hash` is written: the database refuses to change or delete it, its pairs and its
    contested comparisons (curation/triggers.py); only `created_by` may become NULL (an erased login)."""

    class Aggregation(models.TextChoices):
        MAJORITY = "majority", "Strict majority"
        MEAN = "mean", "Mean preference"
        BT = "bt", "Bradley–Terry"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="snapshots")
    name = models.CharField(max_length=200, blank=True)
    aggregation = models.CharField(max_length=10, choices=Aggregation.choices, default=Aggregation.MAJORITY)
    axis = models.CharField(max_length=12, choices=Axis.choices, default=Axis.OVERALL)
    filters = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    pair_count = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotate_datasetsnapshot"  # the table keeps its name from before the app split
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Snapshot {self.pk} ({self.content_hash[:12]})"


class SnapshotPair(models.Model):
    """One frozen consensus pair of a snapshot, oriented chosen/rejected."""

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="pairs")
    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="+")
    chosen = models.CharField(max_length=1, choices=Side.choices)
    margin = models.FloatField(help_text="Human margin 0–1.")
    source_margin = models.FloatField(
        null=True,
        blank=True,
        help_text="A source label's margin from its file (trl `margin`), when it had one.",
    )
    votes = models.PositiveIntegerField()
    agreement = models.FloatField(help_text="Share of non-tie votes for the chosen side.")
    label_origin = models.CharField(max_length=12, default="vote")  # vote | gold | adjudicated | source
    a_safe = models.BooleanField(null=True)
    b_safe = models.BooleanField(null=True)
    safer = models.CharField(max_length=1, choices=Side.choices, null=True)

    class Meta:
        db_table = "annotate_snapshotpair"  # the table keeps its name from before the app split
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "comparison"], name="snapshot_pair_unique")
        ]


class SnapshotContested(models.Model):
    """A comparison with judgments (any, whatever the snapshot's exclude option counts) that the snapshot
    considered but froze no pair for (no consensus, an adjudicated or gold tie, below the minimum agreement, an
    excluded gold comparison): `raw` exports its votes too. A comparison nobody judged is not recorded."""

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="contested")
    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "comparison"], name="snapshot_contested_unique")
        ]


class SourceMargin(models.Model):
    """The `margin` a `trl` line gave its pair: kept with the source label it came with, so that a snapshot's
    `trl` export writes it back (SnapshotPair.source_margin)."""

    judgment = models.OneToOneField(Judgment, on_delete=models.CASCADE, related_name="source_margin")
    margin = models.FloatField()


class JobStatus(models.TextChoices):
    """The life of a background import or export job."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class LeasedJob(models.Model):
    """A job row a worker holds by a lease (curation/job_leases.py): the worker that claimed it writes its name in
    `lease_owner` and renews `heartbeat_at` while it runs; the sweep re-queues or fails a job whose heartbeat
    stopped, and says so in `note` (as does an admin's retry or cancel). While queued, `heartbeat_at` is when it
    was (re-)sent, so the sweep can re-send a message that was lost."""

    lease_owner = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        abstract = True


class ImportJob(LeasedJob):
    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    format = models.CharField(max_length=12)
    source = models.CharField(max_length=200, blank=True)
    skip_invalid = models.BooleanField(default=False)
    filename = models.CharField(max_length=300)
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotate_importjob"  # the table keeps its name from before the app split


class ExportJob(LeasedJob):
    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    snapshot = models.ForeignKey(DatasetSnapshot, null=True, on_delete=models.PROTECT, related_name="exports")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    format = models.CharField(max_length=12)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    rows = models.PositiveIntegerField(default=0)
    path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotate_exportjob"  # the table keeps its name from before the app split


class SnapshotJob(LeasedJob):
    """A snapshot asked for from a page or the API, frozen by a Celery task (`cpu` queue), never in a request.

    `options` holds the snapshot options (aggregation, axis, exclude, min_agreement, name) and, from the export
    page, `then_export` ({"format": …, "options": {…}}): the export job to start once the snapshot exists."""

    Status = JobStatus

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="snapshot_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    snapshot = models.ForeignKey(
        DatasetSnapshot, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    export_job = models.ForeignKey(
        ExportJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshot_jobs"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
