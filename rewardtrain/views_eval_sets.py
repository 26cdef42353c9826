"""Pages of evaluation sets and model comparisons (rewardtrain/eval_sets.py): add a set, compare model versions
on it (one Celery job), read the comparison. Researchers and admins of the project only; 404 otherwise."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from insights import charts

from . import eval_sets
from .eval_reading import SET_FORMATS
from .models import EvaluationSet, ModelComparison, ModelVersion
from .views import EvaluateForm, _get_project_for_user


class SetForm(forms.Form):
    name = forms.CharField(max_length=100)
    format = forms.ChoiceField(
        choices=[(f, f) for f in SET_FORMATS],
        help_text="rewardbench: rows of prompt, chosen, rejected and subset. Any format may carry a subset "
        "(or category) field per row.",
    )
    file = forms.FileField(help_text=".jsonl, .jsonl.gz or .parquet")

    clean_file = EvaluateForm.clean_file  # the upload size limit


class CompareForm(forms.Form):
    eval_set = forms.TypedChoiceField(coerce=int, label="Evaluation set")
    models = forms.TypedMultipleChoiceField(coerce=int, widget=forms.CheckboxSelectMultiple, label="Models")

    def __init__(self, *args, project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["eval_set"].choices = [
            (s.pk, f"{s.name} · {s.rows} pairs") for s in EvaluationSet.objects.filter(project=project)[:200]
        ]
        self.fields["models"].choices = [
            (v.pk, f"#{v.pk} {v.get_kind_display()} ({v.run.objective}), {v.created_at:%Y-%m-%d %H:%M}")
            for v in ModelVersion.objects.filter(project=project).select_related("run")[:200]
        ]


def _sets_page(request, project, set_form, compare_form, status=200) -> HttpResponse:
    context = {
        "project": project,
        "set_form": set_form,
        "compare_form": compare_form,
        "sets": EvaluationSet.objects.filter(project=project)[:200],
        "jobs": ModelComparison.objects.filter(project=project).select_related("eval_set")[:50],
    }
    return render(request, "rewardtrain/eval_sets.html", context, status=status)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def eval_set_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The project's evaluation sets and comparisons; POST adds a set from an upload."""
    project = _get_project_for_user(request, slug)
    set_form = SetForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400
        if set_form.is_valid():
            upload = set_form.cleaned_data["file"]
            Path(settings.ARBITER_IMPORTS_DIR).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=settings.ARBITER_IMPORTS_DIR, delete=True) as handle:
                for chunk in upload.chunks():
                    handle.write(chunk)
                handle.flush()
                try:
                    eval_set = eval_sets.create_set(
                        project=project,
                        name=set_form.cleaned_data["name"],
                        fmt=set_form.cleaned_data["format"],
                        source=Path(handle.name),
                        filename=upload.name,
                        actor=request.user,
                    )
                except eval_sets.SetError as error:
                    set_form.add_error("file", str(error))
                else:
                    messages.success(request, f"Evaluation set {eval_set.name!r}: {eval_set.rows} pairs.")
                    return redirect("rewardtrain:eval_set_list", slug=project.slug)
    return _sets_page(request, project, set_form, CompareForm(project=project), status)


@login_required
@require_POST
def eval_compare(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a comparison of model versions on an evaluation set (one job on the cpu queue)."""
    project = _get_project_for_user(request, slug)
    form = CompareForm(request.POST, project=project)
    if form.is_valid():
        eval_set = get_object_or_404(EvaluationSet, pk=form.cleaned_data["eval_set"], project=project)
        try:
            job = eval_sets.start_comparison(
                eval_set=eval_set, model_ids=form.cleaned_data["models"], actor=request.user
            )
        except eval_sets.SetError as error:
            form.add_error("models", str(error))
        else:
            return redirect("rewardtrain:eval_comparison", slug=project.slug, job_id=job.pk)
    return _sets_page(request, project, SetForm(), form, status=400)


def _charts(summary: dict) -> list[dict]:
    """Per model: its margin histogram and reliability diagram (server-drawn SVG)."""
    out = []
    for model in summary.get("models", []):
        hist = model["histogram"]
        out.append(
            {
                "id": model["id"],
                "histogram": charts.histogram(
                    hist["counts"],
                    hist["edges"],
                    label=f"Margins of model #{model['id']}",
                    x_title="margin r(chosen) − r(rejected)",
                    y_title="pairs",
                    width=460,
                ),
                "reliability": charts.reliability_diagram(
                    model["reliability"],
                    label=f"Confidence against accuracy, model #{model['id']}",
                    size=240,
                    x_title="confidence max(p, 1 − p)",
                    y_title="share right",
                ),
            }
        )
    return out


def _accuracy_chart(summary: dict):
    rows = []
    for model in summary.get("models", []):
        rows.append((f"#{model['id']} all", model["accuracy"], model["ci95"]))
        for name, sub in model["subsets"].items():
            rows.append((f"#{model['id']} {name or '(no subset)'}", sub["accuracy"], sub["ci95"]))
    return (
        charts.interval_chart(rows, label="Accuracy with 95% Wilson intervals", lo=0.0, hi=1.0)
        if rows
        else None
    )


@login_required
@require_safe
def eval_comparison(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    job = get_object_or_404(
        ModelComparison.objects.select_related("eval_set", "project"), pk=job_id, project=project
    )
    ended = job.status in (ModelComparison.Status.SUCCEEDED, ModelComparison.Status.FAILED)
    summary = job.summary or {}
    models = summary.get("models", [])
    subset_rows = [
        {"name": name, "cells": [m["subsets"][name] for m in models]} for name in summary.get("subsets", [])
    ]
    buckets = sorted({b["bucket"] for m in models for b in m["by_strength"]})
    strength_rows = [
        {
            "bucket": b,
            "cells": [next((x for x in m["by_strength"] if x["bucket"] == b), None) for m in models],
        }
        for b in buckets
    ]
    context = {
        "project": project,
        "job": job,
        "ended": ended,
        "summary": summary,
        "models": models,
        "subset_rows": subset_rows,
        "strength_rows": strength_rows,
        "model_charts": _charts(summary),
        "accuracy_chart": _accuracy_chart(summary),
        "disagreements": eval_sets.linked_disagreements(job) if summary else [],
    }
    template = "rewardtrain/eval_comparison.html"
    if request.htmx:
        template += "#comparison_result"
    return render(request, template, context)
