"""Arbiter's core records: projects, people, items, comparisons, assignments, judgments, snapshots, audit.

Signs: every answer is stored relative to the comparison's canonical order (response A = the side that
arrived first). `preference` is −3…+3, negative = A better. See DESIGN.md "Signs, strength, consensus".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

BEAVERTAILS_CATEGORIES = [
    "animal_abuse",
    "child_abuse",
    "controversial_topics,politics",
    "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance",
    "financial_crime,property_crime,theft",
    "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety",
    "non_violent_unethical_behavior",
    "privacy_violation",
    "self_harm",
    "sexually_explicit,adult_content",
    "terrorism,organized_crime",
    "violence,aiding_and_abetting,incitement",
]


def default_harm_categories() -> list[str]:
    return list(BEAVERTAILS_CATEGORIES)


class Side(models.TextChoices):
    A = "a", "A"
    B = "b", "B"


class Choice(models.TextChoices):
    A = "a", "A"
    TIE = "tie", "Tie"
    B = "b", "B"


class Severity(models.TextChoices):
    MINOR = "minor", "Minor"
    MODERATE = "moderate", "Moderate"
    SEVERE = "severe", "Severe"


class Axis(models.TextChoices):
    OVERALL = "overall", "Overall"
    HELPFULNESS = "helpfulness", "Helpfulness"
    HARMLESSNESS = "harmlessness", "Harmlessness"


class Project(models.Model):
    class Justification(models.TextChoices):
        REQUIRED = "required", "Required"
        OPTIONAL = "optional", "Optional"
        HIDDEN = "hidden", "Not asked"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to annotators while labelling.")
    guidelines_updated_at = models.DateTimeField(null=True, blank=True)

    # Which questions are asked.
    ask_overall = models.BooleanField(default=True, help_text="7-point overall preference.")
    ask_helpful_harmless = models.BooleanField(default=True, help_text="More helpful / more harmless.")
    ask_safety = models.BooleanField(
        default=True, help_text="Per-response safety, harm categories, severity."
    )
    harm_categories = models.JSONField(default=default_harm_categories, blank=True)
    justification = models.CharField(
        max_length=10, choices=Justification.choices, default=Justification.OPTIONAL
    )
    rubric_version = models.ForeignKey(
        "rubrics.RubricVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="projects"
    )
    rubric_essential_blocks = models.BooleanField(
        default=True, help_text="Unanswered essential rubric criteria block submission."
    )
    rubric_essential_cap = models.FloatField(
        default=0.5, help_text="Score cap when an essential criterion fails."
    )

    # Queue.
    overlap_k = models.PositiveSmallIntegerField(
        default=3, help_text="Crowd judgments wanted per comparison."
    )
    gold_share = models.FloatField(default=0.0, help_text="Share of served comparisons that are gold (0–1).")
    reservation_minutes = models.PositiveIntegerField(default=30)
    revision_window_hours = models.PositiveIntegerField(default=24)
    show_gold_feedback = models.BooleanField(default=False)
    blur_content = models.BooleanField(default=False, help_text="Blur responses until revealed.")
    content_warning = models.TextField(blank=True)
    paused = models.BooleanField(default=False)
    auto_pause_gold_threshold = models.FloatField(
        null=True, blank=True, help_text="Pause an annotator whose gold accuracy falls below this."
    )
    auto_pause_min_gold = models.PositiveIntegerField(default=10)

    # Export and training policy.
    researchers_can_export = models.BooleanField(default=False)
    retrain_every = models.PositiveIntegerField(
        null=True, blank=True, help_text="Retrain automatically after this many new judgments."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(gold_share__gte=0) & Q(gold_share__lte=1), name="project_gold_share_range"
            ),
            models.CheckConstraint(condition=Q(overlap_k__gte=1), name="project_overlap_k_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        RESEARCHER = "researcher", "Researcher"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    paused_reason = models.CharField(
        max_length=200, blank=True, help_text="Set when labelling is paused for them."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_unique_user_project")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.project} · {self.role}"


class Annotator(models.Model):
    """Whoever gave a judgment within a project: a login, a named annotator from a `raw` import, or a source.

    Imported names are kept within the project and never matched to a login (DESIGN.md, `raw`).
    """

    class Kind(models.TextChoices):
        CROWD = "crowd", "Crowd"
        SOURCE = "source", "Source label"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotators")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="annotator_of",
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CROWD)
    imported = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    erased = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="annotator_unique_name"),
            models.UniqueConstraint(
                fields=["project", "user"], condition=Q(user__isnull=False), name="annotator_unique_user"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    # No separate index: the unique (project, prompt_key) index leads with project_id.
    # The *_key columns (here, Response.text_key, Comparison.pair_key) are COLLATE "C" in the database:
    # migration 0005 (the fields declare no db_collation).
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    prompt = models.JSONField(help_text='Chat messages: [{"role": …, "content": …}].')
    prompt_key = models.CharField(max_length=64, help_text="sha256 of the canonical JSON of the messages.")
    source = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    criteria = models.JSONField(default=list, blank=True, help_text="Item-specific rubric criteria.")
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "prompt_key"], name="item_unique_prompt")]

    def __str__(self) -> str:
        return f"Item {self.pk}"


class Response(models.Model):
    # No separate index: the unique (item, text_key) index leads with item_id.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses", db_index=False)
    text = models.TextField(blank=True)
    text_key = models.CharField(max_length=64, help_text="sha256 of the exact text.")
    model_name = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "text_key"], name="response_unique_text")]

    def __str__(self) -> str:
        return f"Response {self.pk}"


class Comparison(models.Model):
    """A pair of responses to one item, in canonical order: A is the response that arrived first."""

    # Index entries are the import's main cost. A pair is unique per item: the pair key embeds the prompt key,
    # which is unique per project, so that is one comparison per project and unordered pair, and an import's
    # new comparisons (of new items) go in at the end of that index instead of at random places in a
    # per-project one (measured: about 6 µs a comparison of the server's time). It leads with item_id, so it
    # is the item foreign key's index too; project_id is covered by the queue index. The response foreign keys
    # keep theirs: without them every deleted response scans this table.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="comparisons", db_index=False)
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    pair_key = models.CharField(
        max_length=64, help_text="sha256 of prompt key + the sorted pair of text keys."
    )
    extra_k = models.PositiveSmallIntegerField(
        default=0, help_text="Judgments wanted beyond the project's k."
    )
    crowd_judgments = models.PositiveIntegerField(
        default=0, help_text="Submitted crowd judgments (queue order)."
    )
    random_key = models.FloatField(default=0.0, help_text="Stable random tie-break for the queue order.")
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "pair_key"], name="comparison_unique_pair"),
            models.CheckConstraint(
                condition=~Q(response_a=models.F("response_b")), name="comparison_distinct_sides"
            ),
        ]
        indexes = [models.Index(fields=["project", "crowd_judgments", "random_key"], name="comparison_queue")]

    def __str__(self) -> str:
        return f"Comparison {self.pk}"


class Gold(models.Model):
    class Origin(models.TextChoices):
        SOURCE = "source", "From a source label"
        MANUAL = "manual", "Set by hand"

    comparison = models.OneToOneField(Comparison, on_delete=models.CASCADE, related_name="gold")
    choice = models.CharField(max_length=3, choices=Choice.choices)
    helpfulness = models.CharField(max_length=3, choices=Choice.choices, null=True, blank=True)
    harmlessness = models.CharField(max_length=3, choices=Choice.choices, null=True, blank=True)
    a_safe = models.BooleanField(null=True, blank=True)
    b_safe = models.BooleanField(null=True, blank=True)
    explanation = models.TextField(blank=True)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.MANUAL)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "gold"


class Assignment(models.Model):
    class Status(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RESERVED)
    is_gold = models.BooleanField(default=False)
    shown_left = models.CharField(max_length=1, choices=Side.choices, default=Side.A)
    reserved_until = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_unique_annotator"),
            # At most one open reservation per annotator per project (a reload returns the same one).
            models.UniqueConstraint(
                fields=["project", "annotator"],
                condition=Q(status="reserved"),
                name="assignment_one_open_reservation",
            ),
        ]
        indexes = [models.Index(fields=["comparison", "status"], name="assignment_comparison_status")]


class Answers(models.Model):
    """The answer fields of a judgment, relative to the comparison's canonical order."""

    preference = models.SmallIntegerField(null=True, blank=True, help_text="−3…+3, negative = A better.")
    choice = models.CharField(max_length=3, choices=Choice.choices, null=True, blank=True)
    helpfulness = models.CharField(max_length=3, choices=Choice.choices, null=True, blank=True)
    harmlessness = models.CharField(max_length=3, choices=Choice.choices, null=True, blank=True)
    a_safe = models.BooleanField(null=True, blank=True)
    b_safe = models.BooleanField(null=True, blank=True)
    a_harm_categories = models.JSONField(default=list, blank=True)
    b_harm_categories = models.JSONField(default=list, blank=True)
    a_severity = models.CharField(max_length=8, choices=Severity.choices, null=True, blank=True)
    b_severity = models.CharField(max_length=8, choices=Severity.choices, null=True, blank=True)
    justification = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    shown_left = models.CharField(max_length=1, choices=Side.choices, null=True, blank=True)

    class Meta:
        abstract = True


def _answer_constraints(prefix: str) -> list[models.BaseConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(preference__isnull=True) | (Q(preference__gte=-3) & Q(preference__lte=3)),
            name=f"{prefix}_preference_range",
        ),
        # A safe response has no harm categories and no severity.
        models.CheckConstraint(
            condition=~Q(a_safe=True) | Q(a_severity__isnull=True), name=f"{prefix}_a_safe_sev"
        ),
        models.CheckConstraint(
            condition=~Q(b_safe=True) | Q(b_severity__isnull=True), name=f"{prefix}_b_safe_sev"
        ),
    ]


class Judgment(Answers):
    """One annotator's answer on one comparison. Its fields mirror the latest revision (the one that counts)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judgments")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="judgments")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgment"
    )
    is_source = models.BooleanField(default=False, help_text="A source label: never counts toward k.")
    imported = models.BooleanField(default=False)
    is_gold = models.BooleanField(
        default=False, help_text="Given on a gold comparison: outside k and agreement."
    )
    revision_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="judgment_unique_annotator"),
            *_answer_constraints("judgment"),
        ]
        indexes = [models.Index(fields=["project", "annotator"], name="judgment_project_annotator")]


class JudgmentRevision(Answers):
    """Append-only history of a judgment: every submit or edit is a new row; the highest number counts."""

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    submission_id = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        unique=True,
        help_text="Client-made id: resubmission is idempotent.",
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["judgment", "number"], name="revision_unique_number"),
            *_answer_constraints("revision"),
        ]
        ordering = ["judgment_id", "number"]


class Draft(models.Model):
    """Autosaved, unsubmitted answers of an open assignment; `version` stops an old tab overwriting a newer draft."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="draft")
    data = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class Adjudication(models.Model):
    """A researcher's final label for one comparison and axis: overrides the vote in consensus and export."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="adjudications")
    axis = models.CharField(max_length=12, choices=Axis.choices, default=Axis.OVERALL)
    choice = models.CharField(max_length=3, choices=Choice.choices)
    reason = models.TextField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "axis"], name="adjudication_unique_axis")
        ]


class DatasetSnapshot(models.Model):
    """A frozen selection of consensus pairs: what training and export consume."""

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
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Snapshot {self.pk} ({self.content_hash[:12]})"


class SnapshotPair(models.Model):
    """One frozen consensus pair of a snapshot, oriented chosen/rejected."""

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="pairs")
    comparison = models.ForeignKey(Comparison, on_delete=models.PROTECT, related_name="+")
    chosen = models.CharField(max_length=1, choices=Side.choices)
    margin = models.FloatField(help_text="Human margin 0–1.")
    votes = models.PositiveIntegerField()
    agreement = models.FloatField(help_text="Share of non-tie votes for the chosen side.")
    label_origin = models.CharField(max_length=12, default="vote")  # vote | gold | adjudicated | source
    a_safe = models.BooleanField(null=True)
    b_safe = models.BooleanField(null=True)
    safer = models.CharField(max_length=1, choices=Side.choices, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "comparison"], name="snapshot_pair_unique")
        ]


class JobStatus(models.TextChoices):
    """The life of a background import or export job."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
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


class ExportJob(models.Model):
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


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(
        max_length=64, unique=True, help_text="sha256 of the token; the token is shown once."
    )
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)


class WorkerHeartbeat(models.Model):
    """Each Celery worker writes which queues it consumes, so a client can tell when none listens."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list)
    last_seen = models.DateTimeField()


class AuditEvent(models.Model):
    """Append-only: imports, exports, role changes, publications, launches, adjudications, deletions."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=60)
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=60, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "action"], name="audit_project_action")]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only")
