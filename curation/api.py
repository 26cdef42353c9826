"""The curation part of the JSON API (added to `projects.api.api`): push items, create and read snapshots,
export. Long work never runs in a request: an import, a snapshot and an export are each a Celery job (`cpu`
queue) that the POST queues (202) and a GET on the job reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.urls import reverse
from ninja import File, Router, Schema, Status
from ninja.files import UploadedFile

from curation.exporters import ExportError, can_export, card_path_for, download_token, start_export_job
from curation.importers.jobs import job_progress, start_import_job
from curation.models import DatasetSnapshot, ExportJob, ImportJob, SnapshotJob
from curation.snapshot_jobs import snapshot_job_as_dict, start_snapshot_job
from curation.snapshots import snapshot_as_dict
from infra.uploads import human_size
from insights.consensus import ConsensusError
from projects.access import is_admin, role_in
from projects.api import RESEARCH, Message, project_for
from projects.models import Project

Format = Literal["trl", "hh", "safe-rlhf", "raw"]
ImportFormat = Literal["trl", "hh", "safe-rlhf", "generic", "raw"]
Aggregation = Literal["majority", "mean", "bt"]
AxisName = Literal["overall", "helpfulness", "harmlessness"]
ExcludeName = Literal["gold", "imported", "flagged"]


router = Router()


class SnapshotIn(Schema):
    aggregation: Aggregation = "majority"
    axis: AxisName = "overall"
    exclude: list[ExcludeName] = []
    min_agreement: float | None = None
    name: str = ""


class SnapshotOut(Schema):
    id: int
    project: str
    name: str
    aggregation: str
    axis: str
    filters: dict[str, Any]
    counts: dict[str, Any]
    pair_count: int
    content_hash: str
    created_by: str | None
    created_at: str


class SnapshotJobOut(Schema):
    id: int
    project: str
    options: dict[str, Any]
    status: str
    snapshot: int | None
    error: str
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class ImportJobOut(Schema):
    id: int
    project: str
    format: str
    source: str
    skip_invalid: bool
    filename: str
    size_bytes: int
    status: str
    progress: float
    report: dict[str, Any]
    created_by: str | None
    created_at: str
    finished_at: str | None


class ExportIn(Schema):
    snapshot: int
    format: Format
    style: Literal["conversational", "text"] = "conversational"
    margin: bool = False
    gzip: bool = False
    parquet: bool = False
    with_names: bool = False
    reward_fit: int | None = None  # trl: a rubric reward fit of the snapshot adds `reward_terms`


class ExportJobOut(Schema):
    id: int
    project: str
    snapshot: int | None
    format: str
    options: dict[str, Any]
    status: str
    progress: float
    rows: int
    error: str
    download_url: str | None = None
    card_url: str | None = None
    expires_at: str | None = None


def _export_project(request: HttpRequest, project: Project) -> Project:
    if project.deleted_at is not None or not can_export(request.user, project):
        raise Http404("Not found")
    return project


def _researched(request: HttpRequest, obj):
    """`obj` (a row with a `project`) if the user is a researcher or admin of its live project; else 404."""
    if (
        obj is None
        or obj.project.deleted_at is not None
        or role_in(request.user, obj.project) not in RESEARCH
    ):
        raise Http404("Not found")
    return obj


def _snapshot(request: HttpRequest, snapshot_id: int, *, export: bool = False) -> DatasetSnapshot:
    snapshot = _researched(
        request,
        DatasetSnapshot.objects.select_related("project", "created_by").filter(pk=snapshot_id).first(),
    )
    if export:
        _export_project(request, snapshot.project)
    return snapshot


def _job_out(request: HttpRequest, job: ExportJob) -> dict[str, Any]:
    out = {
        "id": job.pk,
        "project": job.project.slug,
        "snapshot": job.snapshot_id,
        "format": job.format,
        "options": job.options,
        "status": job.status,
        "progress": job.progress,
        "rows": job.rows,
        "error": job.error,
        "expires_at": job.expires_at.isoformat() if job.expires_at else None,
    }
    if job.status == ExportJob.Status.SUCCEEDED:
        url = reverse("export_download", args=[download_token(job, request.user)])
        out["download_url"] = request.build_absolute_uri(url)
        out["card_url"] = request.build_absolute_uri(url + "?part=card")
    return out


@router.post(
    "/projects/{slug}/items",
    response={202: ImportJobOut, 404: Message, 413: Message},
    tags=["imports"],
)
def push_items(
    request,
    slug: str,
    format: ImportFormat,
    file: UploadedFile = File(...),  # noqa: B008 - ninja's parameter declaration
    source: str | None = None,
    skip_invalid: bool = False,
):
    """Queue an import of a file in one of the import formats (`.jsonl`, `.jsonl.gz` or `.parquet`): admins
    only. The import page's job: poll GET /imports/{id}; a file with bad lines changes nothing (the job fails,
    its report lists every bad line with file, line and field) unless `skip_invalid`."""
    project = project_for(request, slug, roles=("admin",))
    limit = settings.ARBITER_MAX_UPLOAD_BYTES
    if (file.size or 0) > limit:
        return Status(413, {"detail": f"The upload is larger than the limit of {human_size(limit)}."})
    job = start_import_job(
        project=project,
        actor=request.user,
        upload=file,
        fmt=format,
        source=source or "",
        skip_invalid=skip_invalid,
    )
    return Status(202, _import_out(job))


def _import_out(job: ImportJob) -> dict[str, Any]:
    report = dict(job.report or {})
    if "errors" in report:
        report["errors"] = [{"file": job.filename, **e} for e in report["errors"]]
    return {
        "id": job.pk,
        "project": job.project.slug,
        "format": job.format,
        "source": job.source,
        "skip_invalid": job.skip_invalid,
        "filename": job.filename,
        "size_bytes": job.size_bytes,
        "status": job.status,
        "progress": job_progress(job),
        "report": report,
        "created_by": job.created_by.get_username() if job.created_by else None,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


@router.get("/imports/{job_id}", response=ImportJobOut, tags=["imports"])
def get_import(request, job_id: int):
    """An import job: status, progress (0–1) and, once done, its report. Admins only."""
    if not is_admin(request.user):
        raise Http404("Not found")
    job = ImportJob.objects.select_related("project", "created_by").filter(pk=job_id).first()
    if job is None or job.project.deleted_at is not None:
        raise Http404("Not found")
    return _import_out(job)


# --- snapshots -----------------------------------------------------------------------------------------


@router.get("/projects/{slug}/snapshots", response=list[SnapshotOut], tags=["snapshots"])
def list_snapshots(request, slug: str):
    project = project_for(request, slug, roles=RESEARCH)
    return [snapshot_as_dict(s) for s in project.snapshots.select_related("project", "created_by")[:500]]


@router.post("/projects/{slug}/snapshots", response={202: SnapshotJobOut, 400: Message}, tags=["snapshots"])
def post_snapshot(request, slug: str, data: SnapshotIn):
    """Queue a snapshot (the `cpu` queue; a large project takes a while): bad options are refused at once
    (400). Poll GET /snapshot-jobs/{id}: `snapshot` is the new snapshot's id once `status` is `succeeded`."""
    project = project_for(request, slug, roles=RESEARCH)
    try:
        job = start_snapshot_job(
            project=project,
            actor=request.user,
            aggregation=data.aggregation,
            axis=data.axis,
            exclude=data.exclude,
            min_agreement=data.min_agreement,
            name=data.name,
        )
    except ConsensusError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(202, snapshot_job_as_dict(job))


@router.get("/snapshot-jobs/{job_id}", response=SnapshotJobOut, tags=["snapshots"])
def get_snapshot_job(request, job_id: int):
    job = SnapshotJob.objects.select_related("project", "created_by").filter(pk=job_id).first()
    return snapshot_job_as_dict(_researched(request, job))


@router.get("/snapshots/{snapshot_id}", response=SnapshotOut, tags=["snapshots"])
def get_snapshot(request, snapshot_id: int):
    return snapshot_as_dict(_snapshot(request, snapshot_id))


# --- export jobs ---------------------------------------------------------------------------------------


@router.post("/projects/{slug}/exports", response={202: ExportJobOut, 400: Message}, tags=["exports"])
def post_export(request, slug: str, data: ExportIn):
    """Queue a background export (the `cpu` queue); poll GET /exports/{id} for progress and the link."""
    project = _export_project(request, project_for(request, slug, roles=RESEARCH))
    if data.with_names and not is_admin(request.user):
        raise Http404("Not found")
    snapshot = project.snapshots.filter(pk=data.snapshot).first()
    if snapshot is None:
        raise Http404("Not found")
    options = data.dict(exclude={"snapshot", "format"}, exclude_none=True) | {"via": "api"}
    try:
        job = start_export_job(
            project=project, actor=request.user, snapshot=snapshot, fmt=data.format, options=options
        )
    except ExportError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(202, _job_out(request, job))


def _job(request: HttpRequest, job_id: int) -> ExportJob:
    job = _researched(request, ExportJob.objects.select_related("project").filter(pk=job_id).first())
    _export_project(request, job.project)
    return job


@router.get("/exports/{job_id}", response=ExportJobOut, tags=["exports"])
def get_export(request, job_id: int):
    return _job_out(request, _job(request, job_id))


@router.get("/exports/{job_id}/file", tags=["exports"])
def get_export_file(request, job_id: int, part: Literal["data", "card"] = "data"):
    job = _job(request, job_id)
    if job.status != ExportJob.Status.SUCCEEDED or not job.path:
        raise Http404("Not ready")
    path = Path(job.path) if part == "data" else card_path_for(Path(job.path))
    if not path.exists():
        raise Http404("Gone")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115
