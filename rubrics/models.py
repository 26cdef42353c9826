"""Rubrics: a rubric has versions; a published version is frozen; answers record the version they used."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Rubric(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

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
    weight = models.FloatField()
    answer_type = models.CharField(max_length=10, choices=AnswerType.choices, default=AnswerType.YES_NO)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="criterion_unique_key")]
        ordering = ["version_id", "position", "id"]


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
