"""The training part of the JSON API: list, read and start training runs (added to `projects.api.api`)."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from django.http import Http404
from django.urls import reverse
from ninja import Router, Schema, Status

from projects.access import role_in
from projects.api import RESEARCH, Message, project_for
from rewardtrain import downloads, eval_sets
from rewardtrain.models import ModelComparison, ModelVersion, TrainingRun
from rewardtrain.services import start_run

router = Router()


class RunIn(Schema):
    # None: the run's worker freezes a new snapshot when the run starts.
    snapshot: int | None = None
    objective: Literal["bt", "bt-margin", "cost"] = "bt"
    base_model: str = ""
    queue: Literal["gpu", "cpu"] = "gpu"
    config: dict[str, Any] = {}


class RunOut(Schema):
    id: int
    project: str
    snapshot: int | None
    objective: str
    base_model: str
    queue: str
    status: str
    progress: dict[str, Any]
    metrics: dict[str, Any]
    error: str
    created_at: str
    started_at: str | None
    finished_at: str | None


def _run_out(run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "project": run.project.slug,
        "snapshot": run.snapshot_id,
        "objective": run.objective,
        "base_model": run.base_model,
        "queue": run.queue,
        "status": run.status,
        "progress": run.progress,
        "metrics": run.metrics,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


@router.get("/projects/{slug}/runs", response=list[RunOut], tags=["training"])
def list_runs(request, slug: str):
    project = project_for(request, slug, roles=RESEARCH)
    return [_run_out(r) for r in TrainingRun.objects.filter(project=project).select_related("project")[:200]]


@router.get("/runs/{run_id}", response=RunOut, tags=["training"])
def get_run(request, run_id: int):
    run = TrainingRun.objects.select_related("project").filter(pk=run_id).first()
    if (
        run is None
        or run.project.deleted_at is not None
        or role_in(request.user, run.project) not in RESEARCH
    ):
        raise Http404("Not found")
    return _run_out(run)


@router.post("/projects/{slug}/runs", response={201: RunOut, 400: Message}, tags=["training"])
def post_run(request, slug: str, data: RunIn):
    """Launch a training run on a snapshot of the project (researchers and admins)."""
    project = project_for(request, slug, roles=RESEARCH)
    snapshot = None
    if data.snapshot is not None:
        snapshot = project.snapshots.filter(pk=data.snapshot).first()
        if snapshot is None:
            raise Http404("Not found")
    try:
        run = start_run(
            project=project,
            snapshot=snapshot,
            objective=data.objective,
            base_model=data.base_model or settings.ARBITER_DEFAULT_BASE_MODEL,
            queue=data.queue,
            config=data.config,
            actor=request.user,
            freeze_in_worker=True,
        )
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(201, _run_out(run))


class DownloadOut(Schema):
    url: str
    filename: str
    expires_at: str


@router.get("/models/{version_id}/download", response=DownloadOut, tags=["training"])
def model_download_link(request, version_id: int):
    """A signed link to the model version's Hugging Face folder as `.tar.gz` (weights, config, tokenizer, model
    card). The link itself is the credential and expires after `ARBITER_MODEL_LINK_SECONDS`; researchers and
    admins of the project only."""
    version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
    if version is None or not downloads.can_download(request.user, version):
        raise Http404("Not found")
    url = reverse("rewardtrain:model_download", args=[downloads.download_token(version, request.user)])
    return {
        "url": request.build_absolute_uri(url),
        "filename": f"{downloads.archive_name(version)}.tar.gz",
        "expires_at": downloads.link_expires_at().isoformat(),
    }


@router.get("/eval-comparisons/{job_id}", response=dict[str, Any], tags=["training"])
def get_eval_comparison(request, job_id: int):
    """A comparison of model versions on an evaluation set: status, the set, and (when done) accuracy overall and
    per subset with 95% Wilson intervals, by label strength, calibration (ECE), margin histograms and the pairs
    of disagreement (with the project comparison's id where the pair is one). Researchers and admins only."""
    job = ModelComparison.objects.select_related("project", "eval_set").filter(pk=job_id).first()
    if job is None or job.project.deleted_at is not None or role_in(request.user, job.project) not in RESEARCH:
        raise Http404("Not found")
    return eval_sets.job_json(job)
