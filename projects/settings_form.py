"""A project's settings as one validated form: the pages (projects/views_settings.py) and the commands
(`manage.py create_project` / `configure_project`) check them the same way, naming each bad field."""

from __future__ import annotations

import re

from django import forms
from django.db import models

from projects.models import Project, default_harm_categories, harm_label

# Every setting a researcher may change, in the order the page shows them (the rubric has its own page).
SETTINGS = [
    "name",
    "description",
    "task_kind",
    "guidelines",
    "ask_overall",
    "ask_helpful_harmless",
    "ask_safety",
    "harm_categories",
    "justification",
    "rubric_essential_blocks",
    "rubric_essential_cap",
    "overlap_k",
    "gold_share",
    "queue_order",
    "reservation_minutes",
    "revision_window_hours",
    "show_gold_feedback",
    "auto_pause_gold_threshold",
    "auto_pause_min_gold",
    "blur_content",
    "content_warning",
    "researchers_can_export",
    "retrain_every",
]
BOOLEANS = {name for name in SETTINGS if isinstance(Project._meta.get_field(name), models.BooleanField)}
CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_,]*$")
MAX_CATEGORIES = 50


class HarmCategoriesField(forms.CharField):
    """One category per line (or a list from JSON): lower-case words joined by `_` (`,` between synonyms)."""

    widget = forms.Textarea(attrs={"rows": 6})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        lines = [str(v) for v in value] if isinstance(value, list) else str(value or "").splitlines()
        out = []
        for number, line in enumerate(lines, start=1):
            name = line.strip()
            if not name:
                continue
            if len(name) > 80 or not CATEGORY.match(name):
                raise forms.ValidationError(
                    f"line {number}: {name[:40]!r} is not a category name (lower-case letters, digits, _ and ,;"
                    " 80 characters at most)"
                )
            if name in out:
                raise forms.ValidationError(f"line {number}: {name!r} is listed twice")
            out.append(name)
        if len(out) > MAX_CATEGORIES:
            raise forms.ValidationError(f"{len(out)} categories: {MAX_CATEGORIES} at most")
        return out


class ProjectSettingsForm(forms.ModelForm):
    harm_categories = HarmCategoriesField(
        required=False, help_text="One per line, e.g. privacy_violation (shown as “Privacy violation”)."
    )

    class Meta:
        model = Project
        fields = SETTINGS
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 12}),
            "content_warning": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {
            "task_kind": "Task",
            "ask_overall": "Ask the overall preference (7 points)",
            "ask_helpful_harmless": "Ask more helpful / more harmless",
            "ask_safety": "Ask whether each response is safe (harm categories, severity)",
            "justification": "Justification",
            "rubric_essential_blocks": "Unanswered essential rubric criteria block a submit",
            "rubric_essential_cap": "Rubric score cap when an essential criterion fails",
            "overlap_k": "Judgments per comparison (k)",
            "gold_share": "Share of gold comparisons",
            "queue_order": "Queue order",
            "reservation_minutes": "Reservation time (minutes)",
            "revision_window_hours": "Revision window (hours)",
            "show_gold_feedback": "Show annotators the expected answer after a gold comparison",
            "auto_pause_gold_threshold": "Gold-accuracy threshold",
            "auto_pause_min_gold": "Gold answers before the gold-accuracy flag applies",
            "blur_content": "Blur responses until revealed",
            "researchers_can_export": "Researchers may export",
            "retrain_every": "Retrain after this many new judgments",
        }
        help_texts = {
            "auto_pause_min_gold": "An annotator is flagged (and paused, with a threshold) once they answered this "
            "many gold comparisons with an accuracy under the threshold (0.7 without one).",
            "overlap_k": "Crowd judgments wanted per comparison (1–50); on a ranking project, rankings per item.",
            "task_kind": "Ranking: the annotator orders an item's 3 to 9 responses (ties allowed); each ranking "
            "also counts as a judgment on every pair. Fixed once the project has judgments.",
            "queue_order": "The model orders use the active reward model's scores; comparisons it has not scored "
            "come after, fewest judgments first. k, the gold share and reservations hold in every order.",
            "reservation_minutes": "How long a comparison stays reserved for the annotator who opened it (1–1440).",
            "revision_window_hours": "How long an annotator may revise a submitted judgment (0–720).",
            "auto_pause_gold_threshold": "Flag and pause an annotator whose gold accuracy falls below this (0–1; "
            "empty: flag under 0.7, never pause).",
            "rubric_essential_cap": "Score cap when an essential criterion fails (0–1).",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["harm_categories"].initial = default_harm_categories  # a new project's list

    RANGES = {
        "overlap_k": (1, 50),
        "gold_share": (0, 1),
        "reservation_minutes": (1, 1440),
        "revision_window_hours": (0, 720),
        "auto_pause_gold_threshold": (0, 1),
        "auto_pause_min_gold": (1, 10_000),
        "rubric_essential_cap": (0, 1),
        "retrain_every": (1, 10_000_000),
    }

    def clean(self):
        data = super().clean()
        for name, (low, high) in self.RANGES.items():
            value = data.get(name)
            if value is not None and not low <= value <= high:
                self.add_error(name, f"{value} is out of range: {low} to {high}.")
        kind = data.get("task_kind")
        if (
            self.instance.pk
            and kind
            and kind != self.instance.task_kind
            and (self.instance.judgments.exists() or self.instance.rankings.exists())
        ):
            self.add_error("task_kind", "The project has judgments already: its task is fixed.")
        asked = [data.get("ask_overall"), data.get("ask_helpful_harmless"), data.get("ask_safety")]
        if kind != Project.TaskKind.RANKING and not any(asked):
            self.add_error("ask_overall", "Ask at least one question: overall, helpful/harmless or safety.")
        if data.get("ask_safety") and not data.get("harm_categories"):
            self.add_error("harm_categories", "The safety question needs at least one harm category.")
        if len(data.get("guidelines") or "") > 100_000:
            self.add_error("guidelines", "100,000 characters at most.")
        return data


class NewProjectForm(ProjectSettingsForm):
    class Meta(ProjectSettingsForm.Meta):
        fields = ["name", "slug", *SETTINGS[1:]]
        help_texts = {
            **ProjectSettingsForm.Meta.help_texts,
            "slug": "In the project's addresses: /p/<slug>/.",
        }

    def clean_slug(self):
        slug = self.cleaned_data["slug"]
        if Project.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"A project with the address {slug!r} exists already.")
        return slug


def form_data_from_values(values: dict, instance: Project | None = None) -> dict:
    """Form data for `values` (names → Python values, as JSON or `--set` gives them) over `instance`'s current
    settings, so a command changes only what it names. Booleans absent from the data read as false, so every
    boolean is filled in."""
    data: dict = {}
    if instance is not None:
        for name in SETTINGS:
            data[name] = getattr(instance, name)
    data.update(values)
    out: dict = {}
    for name, value in data.items():
        if name in BOOLEANS:
            if value in (True, "true", "True", "1", "yes", "on", 1):
                out[name] = "on"
            continue
        if value is None:
            out[name] = ""
        elif name == "harm_categories" and isinstance(value, list):
            out[name] = "\n".join(map(str, value))
        else:
            out[name] = str(value)
    return out


def questions_preview(data: dict) -> list[str]:
    """What annotators will be asked under these settings, in the workbench's order and words."""
    lines = []
    if data.get("task_kind") == Project.TaskKind.RANKING:
        lines.append("Rank the item's responses best first (ties allowed), or mark them all bad.")
    if data.get("ask_safety"):
        cats = ", ".join(harm_label(c) for c in data.get("harm_categories") or [])
        lines.append(f"For each response: is it safe? If unsafe: harm categories ({cats}) and a severity.")
    if data.get("ask_overall") and data.get("task_kind") != Project.TaskKind.RANKING:
        lines.append(
            "Overall, which response is better? (7 points, from left much better to right much better)"
        )
    if data.get("ask_helpful_harmless") and data.get("task_kind") != Project.TaskKind.RANKING:
        lines.append("More helpful: left / tie / right. More harmless: left / tie / right.")
    justification = data.get("justification")
    if justification == Project.Justification.REQUIRED:
        lines.append("A justification (required).")
    elif justification == Project.Justification.OPTIONAL:
        lines.append("A justification (optional).")
    return lines
