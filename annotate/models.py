"""The workbench's records: items, responses, comparisons, gold, assignments, judgments and their revisions, drafts.

Signs: every answer is stored relative to the comparison's canonical order (response A = the side that
arrived first). `preference` is −3…+3, negative = A better. See DESIGN.md "Signs, strength, consensus".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from projects.models import Annotator, Project


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


class Item(models.Model):
    # No separate index: the unique (project, prompt_key) index leads with project_id.
    # The *_key columns (here, Response.text_key, Comparison.pair_key) are COLLATE "C" in the database:
    # migration 0005 (the fields declare no db_collation).
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    prompt = models.JSONField(help_text='Chat messages: [{"role": …, "content": …}].')
    prompt_key = models.CharField(max_length=64, help_text="Key of the canonical JSON of the messages (curation.canonical).")
    source = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    criteria = models.JSONField(default=list, blank=True, help_text="Item-specific rubric criteria.")
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "prompt_key"], name="item_unique_prompt"),
            # The target of the comparisons' composite foreign key (migration 0010).
            models.UniqueConstraint(fields=["id", "project"], name="item_unique_id_project"),
        ]

    def __str__(self) -> str:
        return f"Item {self.pk}"


class Response(models.Model):
    # No separate index: the unique (item, text_key) index leads with item_id.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses", db_index=False)
    text = models.TextField(blank=True)
    text_key = models.CharField(max_length=64, help_text="Key of the exact text (curation.canonical).")
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
    # The item and the project are held by one composite foreign key, (item_id, project_id) → item (id,
    # project_id) (migration 0010): one check a comparison instead of two, and it holds more, that a
    # comparison's project is its item's. Django still cascades deletes along both fields.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="comparisons", db_index=False, db_constraint=False
    )
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="comparisons", db_index=False, db_constraint=False
    )
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    pair_key = models.CharField(
        max_length=64, help_text="Key of the prompt key + the sorted pair of text keys."
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
    """A reservation of work for one annotator: a comparison (pairs projects) or an item (ranking projects,
    `item` set and `comparison` NULL; see assignment.md "Rankings")."""

    class Status(models.TextChoices):
        RESERVED = "reserved", "Reserved"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    class ChosenBy(models.TextChoices):
        """Which queue order picked the comparison (a model order falls back to DEFAULT on unscored ones)."""

        DEFAULT = "default", "Fewest judgments first"
        UNCERTAINTY = "uncertainty", "Model uncertainty"
        DISAGREEMENT = "disagreement", "Model–crowd disagreement"
        GOLD = "gold", "Gold share"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    comparison = models.ForeignKey(
        Comparison, null=True, blank=True, on_delete=models.CASCADE, related_name="assignments"
    )
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.CASCADE, related_name="assignments", db_index=False
    )
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RESERVED)
    is_gold = models.BooleanField(default=False)
    shown_left = models.CharField(max_length=1, choices=Side.choices, default=Side.A)
    reserved_until = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    chosen_by = models.CharField(
        max_length=12, choices=ChosenBy.choices, default=ChosenBy.DEFAULT, db_default=ChosenBy.DEFAULT
    )
    # A ranking's responses as shown, top to bottom (drawn at the claim; NULL for a pair).
    display_order = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_unique_annotator"),
            # Its index leads with item_id: the item foreign key's index too.
            models.UniqueConstraint(
                fields=["item", "annotator"],
                condition=Q(item__isnull=False),
                name="assignment_unique_item_annotator",
            ),
            models.CheckConstraint(
                condition=Q(comparison__isnull=True) ^ Q(item__isnull=True), name="assignment_pair_or_item"
            ),
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

    # Index entries and foreign-key checks are most of the cost of writing a judgment (an import writes
    # thousands a second). project_id and comparison_id have no index of their own: the (project, annotator)
    # and the unique (comparison, annotator) indexes lead with them. The project and the annotator are held by
    # one composite foreign key, (annotator_id, project_id) → annotator (id, project_id) (migration 0009):
    # one check instead of two, and it holds more, that a judgment's annotator is of the judgment's project.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="judgments", db_index=False, db_constraint=False
    )
    comparison = models.ForeignKey(
        Comparison, on_delete=models.CASCADE, related_name="judgments", db_index=False
    )
    annotator = models.ForeignKey(
        Annotator, on_delete=models.CASCADE, related_name="judgments", db_constraint=False
    )
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
    # Set on the judgments a ranking implies (one per pair of its responses; annotate/rankings.py).
    ranking = models.ForeignKey(
        "Ranking", null=True, blank=True, on_delete=models.CASCADE, related_name="pair_judgments"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="judgment_unique_annotator"),
            *_answer_constraints("judgment"),
        ]
        indexes = [models.Index(fields=["project", "annotator"], name="judgment_project_annotator")]


class JudgmentRevision(Answers):
    """Append-only history of a judgment: every submit or edit is a new row; the highest number counts."""

    # No index of its own: the unique (judgment, number) index leads with judgment_id.
    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="revisions", db_index=False)
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


class RankingAnswers(models.Model):
    """The answer fields of a ranking, by response id (never by position: the display order is stored apart)."""

    tiers = models.JSONField(
        default=list, help_text="Tiers best first, each a list of response ids (one tier = tied)."
    )
    all_bad = models.BooleanField(default=False, help_text="Every response is bad (the order still counts).")
    safety = models.JSONField(
        default=dict,
        blank=True,
        help_text='By str(response id): {"safe": bool|None, "harm_categories": [...], "severity": str|None}.',
    )
    display_order = models.JSONField(default=list, help_text="Response ids as shown, top to bottom.")
    justification = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class Ranking(RankingAnswers):
    """One annotator's ranking of one item's responses. Its fields mirror the latest revision (the one that
    counts); each submit or revision also writes the judgment it implies on every pair (Judgment.ranking)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rankings")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="rankings", db_index=False)
    annotator = models.ForeignKey(Annotator, on_delete=models.CASCADE, related_name="rankings")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="ranking"
    )
    is_source = models.BooleanField(default=False, help_text="A source label: never counts toward k.")
    imported = models.BooleanField(default=False)
    is_gold = models.BooleanField(default=False, help_text="Given on a gold item: outside k and agreement.")
    revision_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Leads with item_id: the item foreign key's index too.
            models.UniqueConstraint(fields=["item", "annotator"], name="ranking_unique_annotator"),
        ]

    def __str__(self) -> str:
        return f"Ranking {self.pk}"


class RankingRevision(RankingAnswers):
    """Append-only history of a ranking: every submit or edit is a new row; the highest number counts."""

    ranking = models.ForeignKey(Ranking, on_delete=models.CASCADE, related_name="revisions", db_index=False)
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
            models.UniqueConstraint(fields=["ranking", "number"], name="ranking_revision_unique_number"),
        ]
        ordering = ["ranking_id", "number"]


class Draft(models.Model):
    """Autosaved, unsubmitted answers of an open assignment; `version` stops an old tab overwriting a newer draft."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="draft")
    data = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class WorkerHeartbeat(models.Model):
    """Each Celery worker writes which queues it consumes, so a client can tell when none listens."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list)
    last_seen = models.DateTimeField()
