"""Rubrics: a rubric has versions; a published version is frozen; answers record the version they used."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,56}$")
KEY_HELP = "1–56 letters, digits, '_', '.' or '-'."

DEFAULT_WEIGHTS = {"essential": 5.0, "important": 3.0, "optional": 1.0, "pitfall": -2.0}


class FrozenVersionError(ValidationError):
    """A published rubric version (or one of its criteria) was about to change.

    The database refuses the same through triggers (migration 0002); this is the clear message first.
    """


class Rubric(models.Model):
    """A rubric belongs to its author (`created_by`) and to the projects it is shared with: their researchers
    (and admins) may change it; every other author may read and copy it (rubrics/selectors.can_edit)."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    shared_with = models.ManyToManyField(
        "projects.Project",
        blank=True,
        related_name="shared_rubrics",
        help_text="Whose researchers may change it.",
    )

    def __str__(self) -> str:
        return self.name


class RubricVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    based_on = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rubric", "number"], name="rubric_version_unique_number"),
            models.UniqueConstraint(
                fields=["rubric"], condition=Q(status="draft"), name="rubric_one_open_draft"
            ),
        ]
        ordering = ["rubric_id", "number"]

    def __str__(self) -> str:
        return f"{self.rubric.name} v{self.number}"

    def save(self, *args, **kwargs):
        if self._stored_status() == self.Status.PUBLISHED:
            raise FrozenVersionError(f"{self} is published and cannot be changed; start a new draft.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._stored_status() == self.Status.PUBLISHED:
            raise FrozenVersionError(f"{self} is published and cannot be deleted.")
        return super().delete(*args, **kwargs)

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    @property
    def label(self) -> str:
        """What `raw` rows carry as `rubric.version`."""
        return f"{self.rubric.name} v{self.number}"

    def _stored_status(self) -> str | None:
        if self.pk is None:
            return None
        return RubricVersion.objects.filter(pk=self.pk).values_list("status", flat=True).first()


class Criterion(models.Model):
    class Category(models.TextChoices):
        ESSENTIAL = "essential", "Essential"
        IMPORTANT = "important", "Important"
        OPTIONAL = "optional", "Optional"
        PITFALL = "pitfall", "Pitfall"

    class AnswerType(models.TextChoices):
        YES_NO = "yes_no", "Yes / no"
        YES_NO_NA = "yes_no_na", "Yes / no / not applicable"

    version = models.ForeignKey(RubricVersion, on_delete=models.CASCADE, related_name="criteria")
    key = models.CharField(max_length=64, help_text="Stable id across versions (used in exports).")
    position = models.PositiveIntegerField(default=0)
    text = models.TextField()
    guidance = models.TextField(blank=True)
    category = models.CharField(max_length=10, choices=Category.choices, default=Category.IMPORTANT)
    weight = models.FloatField(
        help_text="Defaults by category: essential 5, important 3, optional 1, pitfall −2."
    )
    answer_type = models.CharField(max_length=10, choices=AnswerType.choices, default=AnswerType.YES_NO)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="criterion_unique_key")]
        ordering = ["version_id", "position", "id"]

    def __str__(self) -> str:
        return f"{self.key}: {self.text[:60]}"

    def save(self, *args, **kwargs):
        if self.weight is None:
            self.weight = DEFAULT_WEIGHTS[self.category]
        stored = Criterion.objects.filter(pk=self.pk).values_list("version_id", flat=True).first()
        if self._version_published(self.version_id) or (
            stored is not None and self._version_published(stored)
        ):
            raise FrozenVersionError(
                "This criterion belongs to a published rubric version and cannot be changed; "
                "start a new draft."
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._version_published(self.version_id):
            raise FrozenVersionError(
                "This criterion belongs to a published rubric version and cannot be deleted."
            )
        return super().delete(*args, **kwargs)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not KEY_RE.match(self.key or ""):
            errors["key"] = f"Key {self.key!r} is not valid: {KEY_HELP}"
        if self.weight is not None:
            message = weight_error(self.category, self.weight)
            if message:
                errors["weight"] = message
        if errors:
            raise ValidationError(errors)

    def _version_published(self, version_id: int | None) -> bool:
        return RubricVersion.objects.filter(pk=version_id, status=RubricVersion.Status.PUBLISHED).exists()


def weight_error(category: str, weight: float) -> str | None:
    """Pitfalls subtract (negative weight); every other category adds (positive weight)."""
    if category == Criterion.Category.PITFALL and not weight < 0:
        return "A pitfall's weight must be negative (it is subtracted when the pitfall is present)."
    if category != Criterion.Category.PITFALL and not weight > 0:
        return "Essential, important and optional criteria need a positive weight."
    return None


class CriterionAnswer(models.Model):
    class Answer(models.TextChoices):
        YES = "yes", "Yes"
        NO = "no", "No"
        NA = "na", "Not applicable"

    revision = models.ForeignKey(
        "annotate.JudgmentRevision", on_delete=models.CASCADE, related_name="criterion_answers"
    )
    side = models.CharField(max_length=1, choices=[("a", "A"), ("b", "B")])
    version = models.ForeignKey(
        RubricVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    criterion = models.ForeignKey(
        Criterion, null=True, blank=True, on_delete=models.PROTECT, related_name="answers"
    )
    criterion_key = models.CharField(
        max_length=64, help_text="The criterion's key (or an item criterion's id)."
    )
    answer = models.CharField(max_length=3, choices=Answer.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "side", "criterion_key"], name="criterion_answer_unique"
            )
        ]
