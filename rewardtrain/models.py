"""Training runs, the model versions they produce (one per run), and the scores those models give."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from curation.models import JobStatus


class TrainingRun(models.Model):
    class Objective(models.TextChoices):
        BT = "bt", "Bradley–Terry"
        BT_MARGIN = "bt-margin", "Bradley–Terry with margin"
        COST = "cost", "Safe-RLHF cost model"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="training_runs")
    # None until the run's worker freezes a new snapshot for it (a run started without one): a large project's
    # snapshot takes tens of seconds, which belong in the worker, not in the request that starts the run.
    snapshot = models.ForeignKey(
        "curation.DatasetSnapshot", null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    objective = models.CharField(max_length=10, choices=Objective.choices, default=Objective.BT)
    base_model = models.CharField(max_length=500)
    config = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=10, default="gpu")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    lease_owner = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    progress = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    last_checkpoint = models.CharField(max_length=500, blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    trigger = models.CharField(max_length=20, default="manual")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.objective}, {self.status})"


class ModelVersion(models.Model):
    """The model a succeeded run made, with its lineage: the snapshot's content hash, the base model, the
    configuration, the rubric versions its labels were given under, and the held-out set its figures come
    from. Only `is_active` changes after it is written; the database refuses the rest (rewardtrain/triggers.py).
    """

    class Kind(models.TextChoices):
        REWARD = "reward", "Reward model"
        COST = "cost", "Cost model"

    run = models.OneToOneField(TrainingRun, on_delete=models.PROTECT, related_name="model_version")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="model_versions")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.REWARD)
    path = models.CharField(max_length=500)
    metrics = models.JSONField(default=dict, blank=True)
    snapshot_hash = models.CharField(max_length=64)
    base_model = models.CharField(max_length=500, blank=True)
    config = models.JSONField(default=dict, blank=True)
    rubric_versions = models.JSONField(
        default=list, blank=True, help_text="[{id, label}] of the rubric versions of the snapshot's labels."
    )
    eval_set = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the figures were measured on: {kind: held-out split | evaluation file, name, pairs, "
        "items, comparison_ids}.",
    )
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind"],
                condition=Q(is_active=True),
                name="model_version_one_active_per_kind",
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Model {self.pk} ({self.kind})"


class Score(models.Model):
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scores")
    response = models.ForeignKey("annotate.Response", on_delete=models.CASCADE, related_name="scores")
    value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "response"], name="score_unique")]


class EvaluationJob(models.Model):
    """An uploaded preference file scored by a model version in the background (the evaluate page)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="evaluation_jobs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluation_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    format = models.CharField(max_length=12)
    filename = models.CharField(max_length=300)
    path = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    report = models.JSONField(default=dict, blank=True)
    scores_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class LineageError(ValidationError):
    """A rubric reward fit was about to change or be deleted. The database refuses the same through a trigger
    (migration 0007, `rubric_reward.TRIGGERS`); this is the clear message first."""


class RubricRewardFit(models.Model):
    """A fitted rubric reward (rubric_fit.py): weights per criterion of a published rubric version, and for a
    reward model's score, fitted on a snapshot's pairs; with its cross-validated figures. Lineage: written
    once, never changed or deleted (a database trigger refuses UPDATE and DELETE)."""

    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="+")
    rubric_version = models.ForeignKey("rubrics.RubricVersion", on_delete=models.PROTECT, related_name="+")
    snapshot = models.ForeignKey("curation.DatasetSnapshot", on_delete=models.PROTECT, related_name="+")
    snapshot_hash = models.CharField(max_length=64)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="rubric_fits"
    )
    criterion_keys = models.JSONField(default=list)
    weights = models.JSONField(default=dict, help_text="{criterion key: weight} of the fit with the model.")
    model_weight = models.FloatField(null=True, blank=True)
    fill = models.JSONField(default=dict, help_text="{criterion key: v used when nobody answered yes/no}.")
    options = models.JSONField(default=dict)
    results = models.JSONField(default=dict)
    created_by = models.CharField(max_length=150, blank=True)  # a name, not a key: the row never changes
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Rubric reward fit {self.pk}"

    def save(self, *args, **kwargs):
        if self.pk is not None and RubricRewardFit.objects.filter(pk=self.pk).exists():
            raise LineageError(f"{self} is lineage and cannot be changed; fit again instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LineageError(f"{self} is lineage and cannot be deleted.")


class RubricRewardJob(models.Model):
    """A rubric reward fit asked for from the page, run by a Celery task (`cpu` queue)."""

    Status = JobStatus

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="rubric_reward_jobs"
    )
    rubric_version = models.ForeignKey("rubrics.RubricVersion", on_delete=models.CASCADE, related_name="+")
    snapshot = models.ForeignKey("curation.DatasetSnapshot", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    fit = models.ForeignKey(
        RubricRewardFit, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class EvaluationSet(models.Model):
    """A named, frozen preference file of a project that model versions are compared on (eval_sets.py): the
    file is copied under ARBITER_DATA_DIR once, named by its content's sha256. Lineage: written once, never
    changed or deleted (a database trigger refuses UPDATE and DELETE but in a purge, migration 0009)."""

    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="evaluation_sets")
    name = models.CharField(max_length=100)
    format = models.CharField(max_length=12)
    filename = models.CharField(max_length=300)
    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(help_text="Labelled pairs the set evaluates on.")
    skipped = models.JSONField(default=dict, blank=True)
    subsets = models.JSONField(default=dict, blank=True, help_text="{subset name: pairs}; '' = no subset.")
    strength = models.CharField(max_length=12, blank=True, help_text="'vote share', 'margin' or ''.")
    # Who added it is in the audit log (`evaluation_set.add`): a frozen row keeps no person's name.
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="evaluation_set_unique_name")]

    def __str__(self) -> str:
        return f"Evaluation set {self.name}"

    def save(self, *args, **kwargs):
        if self.pk is not None and EvaluationSet.objects.filter(pk=self.pk).exists():
            raise LineageError(f"{self} is frozen and cannot be changed; add a new set instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LineageError(f"{self} is frozen and cannot be deleted.")


class ModelComparison(models.Model):
    """Model versions scored on one evaluation set in one background job (comparison.py): per-pair results in
    a file, the summary figures in `summary`."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="model_comparisons"
    )
    eval_set = models.ForeignKey(EvaluationSet, on_delete=models.PROTECT, related_name="comparisons")
    model_ids = models.JSONField(default=list, help_text="The compared model versions' ids, in order.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    summary = models.JSONField(default=dict, blank=True)
    results_path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
