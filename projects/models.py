"""Projects and the people on them: projects, memberships (roles), annotators, API tokens, the audit log."""

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


def harm_label(value: str) -> str:
    """A stored harm category as people read it: "violence,aiding_and_abetting" → "Violence, aiding and
    abetting"."""
    words = ", ".join(part.strip().replace("_", " ") for part in str(value).split(",") if part.strip())
    return words[:1].upper() + words[1:]


class Project(models.Model):
    class QueueOrder(models.TextChoices):
        DEFAULT = "default", "Fewest judgments first"
        UNCERTAINTY = "uncertainty", "Reward model least sure first (smallest |margin|)"
        DISAGREEMENT = "disagreement", "Reward model disagrees most with the crowd first"

    class TaskKind(models.TextChoices):
        PAIRS = "pairs", "Pairs (compare two responses)"
        RANKING = "ranking", "Ranking (order 3 to 9 responses)"

    class Justification(models.TextChoices):
        REQUIRED = "required", "Required"
        OPTIONAL = "optional", "Optional"
        HIDDEN = "hidden", "Not asked"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to annotators while labelling.")
    guidelines_updated_at = models.DateTimeField(null=True, blank=True)

    task_kind = models.CharField(
        max_length=8,
        choices=TaskKind.choices,
        default=TaskKind.PAIRS,
        db_default=TaskKind.PAIRS,
        help_text="Pairs of responses, or a ranking of an item's responses (README, Rankings).",
    )

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
    queue_order = models.CharField(
        max_length=12,
        choices=QueueOrder.choices,
        default=QueueOrder.DEFAULT,
        help_text="Which crowd comparison is served next (annotate/assignment.md).",
    )
    reservation_minutes = models.PositiveIntegerField(default=30)
    revision_window_hours = models.PositiveIntegerField(default=24)
    show_gold_feedback = models.BooleanField(default=False)
    blur_content = models.BooleanField(default=False, help_text="Blur responses until revealed.")
    content_warning = models.TextField(blank=True)
    paused = models.BooleanField(default=False)
    auto_pause_gold_threshold = models.FloatField(
        null=True, blank=True, help_text="Pause an annotator whose gold accuracy falls below this."
    )
    # Five gold answers, all wrong, is already a signal worth a flag (a sixth of a shift at 3 % gold).
    auto_pause_min_gold = models.PositiveIntegerField(default=5)

    # Export and training policy.
    researchers_can_export = models.BooleanField(default=False)
    retrain_every = models.PositiveIntegerField(
        null=True, blank=True, help_text="Retrain automatically after this many new judgments."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotate_project"  # the table keeps its name from before the app split
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
        db_table = "annotate_membership"  # the table keeps its name from before the app split
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
        # A model labelling through the API: its judgments never count toward k, and the dashboards keep it
        # out of the human figures (human–model κ beside them).
        MODEL = "model", "Model judge"

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
        db_table = "annotate_annotator"  # the table keeps its name from before the app split
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="annotator_unique_name"),
            # The target of the judgments' composite foreign key (annotate migration 0009).
            models.UniqueConstraint(fields=["id", "project"], name="annotator_unique_id_project"),
            models.UniqueConstraint(
                fields=["project", "user"], condition=Q(user__isnull=False), name="annotator_unique_user"
            ),
        ]

    def __str__(self) -> str:
        return self.name


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

    class Meta:
        db_table = "annotate_apitoken"  # the table keeps its name from before the app split


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
        db_table = "annotate_auditevent"  # the table keeps its name from before the app split
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["project", "action"], name="audit_project_action")]

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only")
