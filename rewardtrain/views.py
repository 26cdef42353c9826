"""Pages of the training side: runs (start, watch live, cancel), the model registry, and evaluation.

Researchers and admins of a project only; everyone else gets 404. The web process never imports torch: work
goes to Celery by task name.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from annotate.worker import live_queues
from config.celery import app as celery_app
from projects.access import get_project_for_user
from projects.models import Project

from . import downloads, selectors, services
from .models import EvaluationJob, ModelVersion, Score, TrainingRun
from .trainer.modes import LORA_MODES, MODE_LABELS

STAFF = ("admin", "researcher")
EVALUATE_TASK = "rewardtrain.tasks.evaluate_upload"
EVAL_FORMATS = ("trl", "hh", "safe-rlhf", "raw")


def _get_project_for_user(request: HttpRequest, slug: str) -> Project:
    return get_project_for_user(request.user, slug, STAFF)[0]


def _get_run_for_user(request: HttpRequest, slug: str, run_id: int) -> tuple[Project, TrainingRun]:
    project = _get_project_for_user(request, slug)
    run = get_object_or_404(
        TrainingRun.objects.select_related("snapshot", "project"), pk=run_id, project=project
    )
    return project, run


def _get_version_for_user(request: HttpRequest, slug: str, version_id: int) -> tuple[Project, ModelVersion]:
    project = _get_project_for_user(request, slug)
    return project, get_object_or_404(ModelVersion, pk=version_id, project=project)


# --- runs ----------------------------------------------------------------------------------------------------


class RunForm(forms.Form):
    objective = forms.ChoiceField(choices=TrainingRun.Objective.choices, initial="bt")
    base_model = forms.CharField(max_length=500, help_text="Local path of a sequence-classification model.")
    snapshot = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)
    queue = forms.ChoiceField(choices=[(q, q) for q in services.QUEUES], initial="gpu")
    epochs = forms.IntegerField(min_value=1, max_value=100, initial=1)
    lr = forms.FloatField(min_value=1e-9, max_value=1.0, initial=2e-5)
    batch_size = forms.IntegerField(min_value=1, max_value=4096, initial=16)
    max_length = forms.IntegerField(min_value=8, max_value=32768, initial=256)
    seed = forms.IntegerField(min_value=0, initial=0)
    mode = forms.ChoiceField(
        choices=list(MODE_LABELS.items()),
        initial="full",
        required=False,
        help_text="LoRA trains small adapters on a frozen base; FSDP shards a model too big for one device.",
    )
    lora_r = forms.IntegerField(
        min_value=1,
        max_value=1024,
        initial=16,
        required=False,
        label="LoRA rank",
        help_text="LoRA modes only.",
    )
    checkpoint_every = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=1_000_000,
        initial=10,
        label="Checkpoint interval",
        help_text="Optimizer steps between checkpoints: a stopped run resumes from the last one (0 = none).",
    )

    def __init__(self, *args, project: Project, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base_model"].initial = settings.ARBITER_DEFAULT_BASE_MODEL
        self.fields["queue"].initial = settings.ARBITER_TRAIN_QUEUE
        self.fields["snapshot"].choices = [("", "Freeze a new snapshot when the run starts")] + [
            (
                s.pk,
                f"#{s.pk} {s.name} · {s.aggregation}/{s.axis} · {s.pair_count} pairs · {s.content_hash[:12]}",
            )
            for s in project.snapshots.all()[:100]
        ]


@login_required
@require_safe
def run_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    runs = selectors.runs_for_project(project)[:100]
    return render(request, "rewardtrain/run_list.html", {"project": project, "runs": runs})


def _run_config(data: dict) -> dict:
    """The run config from the form: the hyper-parameters, the mode, and the LoRA rank for LoRA modes."""
    config = {k: data[k] for k in ("epochs", "lr", "batch_size", "max_length", "seed")}
    if data.get("checkpoint_every") is not None:
        config["checkpoint_every"] = data["checkpoint_every"]
    config["mode"] = data.get("mode") or "full"
    if config["mode"] in LORA_MODES and data.get("lora_r"):
        config["lora_r"] = data["lora_r"]
    return config


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def run_new(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    form = RunForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        snapshot = project.snapshots.filter(pk=data["snapshot"]).first() if data["snapshot"] else None
        try:
            run = services.start_run(
                project=project,
                objective=data["objective"],
                base_model=data["base_model"],
                snapshot=snapshot,
                config=_run_config(data),
                queue=data["queue"],
                actor=request.user,
                freeze_in_worker=True,
            )
        except services.RunError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Run {run.pk} queued on {run.queue}.")
            return redirect("rewardtrain:run_detail", slug=project.slug, run_id=run.pk)
    return render(request, "rewardtrain/run_form.html", {"project": project, "form": form})


CURVE_W, CURVE_H = 600, 220
# Room for the axes: tick labels on the left, tick labels and the axis title below.
CURVE_LEFT, CURVE_RIGHT, CURVE_TOP, CURVE_BOTTOM = 64, 10, 10, 40


def _ticks(lo: float, hi: float, n: int = 3) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)] if hi > lo else [lo]


def loss_curve(history: list) -> dict | None:
    """The loss history as an SVG line chart with axes: x = optimizer step, y = training loss (nats, the
    mean negative log-likelihood of the preferred response). Numbers only: safe to inline."""
    points = [(s, v) for s, v in history if isinstance(s, int | float) and isinstance(v, int | float)]
    if len(points) < 2:
        return None
    steps = [s for s, _ in points]
    losses = [v for _, v in points]
    s0, s1 = min(steps), max(steps)
    lo, hi = min(losses), max(losses)
    span_s, span_l = (s1 - s0) or 1, (hi - lo) or 1
    inner_w = CURVE_W - CURVE_LEFT - CURVE_RIGHT
    inner_h = CURVE_H - CURVE_TOP - CURVE_BOTTOM

    def x(step: float) -> float:
        return CURVE_LEFT + (step - s0) / span_s * inner_w

    def y(loss: float) -> float:
        return CURVE_TOP + (hi - loss) / span_l * inner_h

    coords = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
    return {
        "points": coords,
        "width": CURVE_W,
        "height": CURVE_H,
        "min": lo,
        "max": hi,
        "first": s0,
        "last": s1,
        "plot": {
            "left": CURVE_LEFT,
            "right": CURVE_W - CURVE_RIGHT,
            "top": CURVE_TOP,
            "bottom": CURVE_TOP + inner_h,
        },
        "x_ticks": [{"at": f"{x(t):.1f}", "label": f"{t:.0f}"} for t in _ticks(s0, s1)],
        "y_ticks": [{"at": f"{y(t):.1f}", "label": f"{t:.3f}"} for t in _ticks(lo, hi)],
        "x_title": "Optimizer step",
        "y_title": "Loss (nats)",
    }


def _run_context(run: TrainingRun) -> dict:
    progress = run.progress or {}
    ended = run.status in (
        TrainingRun.Status.SUCCEEDED,
        TrainingRun.Status.FAILED,
        TrainingRun.Status.CANCELLED,
    )
    total = progress.get("total_steps")
    return {
        "run": run,
        "progress": progress,
        "ended": ended,
        "percent": round(100 * progress.get("step", 0) / total) if total else 0,
        "curve": loss_curve(progress.get("history", [])),
        "version": ModelVersion.objects.filter(run=run).first(),
        "no_worker": run.status == TrainingRun.Status.QUEUED and run.queue not in live_queues(),
        "live": settings.CROSS_PROCESS_CHANNELS,
    }


@login_required
@require_safe
def run_detail(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project, run = _get_run_for_user(request, slug, run_id)
    context = {"project": project, **_run_context(run)}
    template = "rewardtrain/run_detail.html"
    if request.htmx:
        template += "#run_progress"
    return render(request, template, context)


@login_required
@require_POST
def run_cancel(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project, run = _get_run_for_user(request, slug, run_id)
    services.cancel_run(run=run, actor=request.user)
    if request.htmx:
        run.refresh_from_db()
        return render(
            request, "rewardtrain/run_detail.html#run_progress", {"project": project, **_run_context(run)}
        )
    messages.info(request, f"Run {run.pk}: cancel requested.")
    return redirect("rewardtrain:run_detail", slug=project.slug, run_id=run.pk)


# --- models --------------------------------------------------------------------------------------------------


@login_required
@require_safe
def model_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    versions = list(selectors.versions_for_project(project)[:200])
    scored = dict(
        Score.objects.filter(model_version__in=versions).values_list("model_version").annotate(n=Count("pk"))
    )
    rows = [
        (v, scored.get(v.pk, 0), downloads.download_token(v, request.user) if Path(v.path).is_dir() else None)
        for v in versions
    ]
    context = {"project": project, "rows": rows, "link_minutes": downloads.link_seconds() // 60}
    return render(request, "rewardtrain/model_list.html", context)


@require_GET
def model_download(request: HttpRequest, token: str) -> StreamingHttpResponse:
    """A model version's folder as `.tar.gz`; the signed link is the credential (see rewardtrain.downloads)."""
    version, user = downloads.version_for_token(token)
    downloads.record_download(version, user)
    name = downloads.archive_name(version)
    chunks = downloads.tar_gz_chunks(Path(version.path), name)
    response = StreamingHttpResponse((c for c in chunks if c), content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="{name}.tar.gz"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def model_activate(request: HttpRequest, slug: str, version_id: int) -> HttpResponse:
    project, version = _get_version_for_user(request, slug, version_id)
    services.activate_model_version(version=version, actor=request.user)
    messages.success(request, f"Model {version.pk} is now the active {version.kind} model; scoring started.")
    return redirect("rewardtrain:model_list", slug=project.slug)


# --- evaluation ----------------------------------------------------------------------------------------------


class EvaluateForm(forms.Form):
    format = forms.ChoiceField(
        choices=[(f, f) for f in (*EVAL_FORMATS, "generic")],
        help_text="generic files carry no preference label and cannot be evaluated.",
    )
    file = forms.FileField()

    def clean_format(self) -> str:
        value = self.cleaned_data["format"]
        if value == "generic":
            raise forms.ValidationError(
                "'generic' files carry no preference label, so there is nothing to evaluate against; "
                "use a trl, hh, safe-rlhf or raw file."
            )
        return value

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.ARBITER_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"{upload.name}: {upload.size} bytes is over the {settings.ARBITER_MAX_UPLOAD_BYTES}-byte limit."
            )
        return upload


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def evaluate_new(request: HttpRequest, slug: str, version_id: int) -> HttpResponse:
    project, version = _get_version_for_user(request, slug, version_id)
    form = EvaluateForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        folder = Path(settings.ARBITER_IMPORTS_DIR) / "evaluations"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".jsonl.gz" if upload.name.endswith(".gz") else ".jsonl"
        path = folder / f"{uuid.uuid4().hex}{suffix}"
        with open(path, "wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        with transaction.atomic():
            job = EvaluationJob.objects.create(
                project=project,
                model_version=version,
                created_by=request.user,
                format=form.cleaned_data["format"],
                filename=upload.name[:300],
                path=str(path),
            )
            job_id = job.pk
            transaction.on_commit(lambda: celery_app.send_task(EVALUATE_TASK, args=[job_id], queue="cpu"))
        return redirect("rewardtrain:evaluation_detail", slug=project.slug, job_id=job.pk)
    jobs = version.evaluation_jobs.all()[:20]
    return render(
        request,
        "rewardtrain/evaluate_form.html",
        {"project": project, "version": version, "form": form, "jobs": jobs},
    )


@login_required
@require_safe
def evaluation_detail(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    project = _get_project_for_user(request, slug)
    job = get_object_or_404(EvaluationJob.objects.select_related("model_version"), pk=job_id, project=project)
    template = "rewardtrain/evaluation_detail.html"
    if request.htmx:
        template += "#evaluation_result"
    ended = job.status in (EvaluationJob.Status.SUCCEEDED, EvaluationJob.Status.FAILED)
    return render(request, template, {"project": project, "job": job, "ended": ended})
