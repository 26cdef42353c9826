"""The curation part of the JSON API: push items, create and read snapshots, export (added to `projects.api.api`)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.urls import reverse
from ninja import File, Router, Schema, Status
from ninja.files import UploadedFile

from curation import importers
from curation.exporters import (
    ExportError,
    can_export,
    card_path_for,
    download_token,
    export_snapshot,
    start_export_job,
)
from curation.models import DatasetSnapshot, ExportJob
from curation.snapshots import create_snapshot, snapshot_as_dict
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


class ExportIn(Schema):
    snapshot: int
    format: Format
    style: Literal["conversational", "text"] = "conversational"
    margin: bool = False
    gzip: bool = False
    parquet: bool = False
    with_names: bool = False


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


def _snapshot(request: HttpRequest, snapshot_id: int, *, export: bool = False) -> DatasetSnapshot:
    snapshot = DatasetSnapshot.objects.select_related("project", "created_by").filter(pk=snapshot_id).first()
    if (
        snapshot is None
        or snapshot.project.deleted_at is not None
        or role_in(request.user, snapshot.project) not in RESEARCH
    ):
        raise Http404("Not found")
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


def _file_response(path: Path, name: str) -> FileResponse:
    """Stream a temporary export: the open file outlives its directory entry."""
    fh = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
    path.unlink()
    return FileResponse(fh, as_attachment=True, filename=name)


@router.post(
    "/projects/{slug}/items",
    response={200: dict[str, Any], 400: dict[str, Any], 404: Message, 503: Message},
    tags=["projects"],
)
def push_items(
    request,
    slug: str,
    format: ImportFormat,
    file: UploadedFile = File(...),  # noqa: B008 - ninja's parameter declaration
    source: str | None = None,
    skip_invalid: bool = False,
):
    """Import a file in one of the import formats (`.jsonl`, `.jsonl.gz` or `.parquet`): admins only.
    A file with bad lines changes nothing (400, every bad line reported) unless `skip_invalid`."""
    project = project_for(request, slug, roles=("admin",))
    suffix = "".join(Path(file.name or "upload.jsonl").suffixes[-2:]) or ".jsonl"
    Path(settings.ARBITER_IMPORTS_DIR).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=settings.ARBITER_IMPORTS_DIR, suffix=suffix) as tmp:
        for chunk in file.chunks():
            tmp.write(chunk)
        tmp.flush()
        try:
            report = importers.import_file(
                Path(tmp.name),
                project=project,
                fmt=format,
                source=source,
                skip_invalid=skip_invalid,
                actor=request.user,
            )
        except importers.ImportFailed as exc:
            return Status(400, {"detail": str(exc), "report": _report(getattr(exc, "report", None))})
    return Status(200, _report(report))


def _report(report: Any) -> dict[str, Any]:
    if report is None:
        return {}
    if hasattr(report, "as_dict"):
        return report.as_dict()
    if dataclasses.is_dataclass(report):
        return dataclasses.asdict(report)
    return dict(vars(report))


# --- snapshots -----------------------------------------------------------------------------------------


@router.get("/projects/{slug}/snapshots", response=list[SnapshotOut], tags=["snapshots"])
def list_snapshots(request, slug: str):
    project = project_for(request, slug, roles=RESEARCH)
    return [snapshot_as_dict(s) for s in project.snapshots.select_related("project", "created_by")[:500]]


@router.post("/projects/{slug}/snapshots", response={201: SnapshotOut, 400: Message}, tags=["snapshots"])
def post_snapshot(request, slug: str, data: SnapshotIn):
    project = project_for(request, slug, roles=RESEARCH)
    try:
        snapshot = create_snapshot(
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
    return Status(201, snapshot_as_dict(snapshot))


@router.get("/snapshots/{snapshot_id}", response=SnapshotOut, tags=["snapshots"])
def get_snapshot(request, snapshot_id: int):
    return snapshot_as_dict(_snapshot(request, snapshot_id))


@router.get("/snapshots/{snapshot_id}/export", tags=["exports"], response={400: Message})
def export_now(
    request,
    snapshot_id: int,
    format: Format,
    style: Literal["conversational", "text"] = "conversational",
    margin: bool = False,
    gzip: bool = False,
    parquet: bool = False,
    with_names: bool = False,
):
    """Export a snapshot synchronously and stream the file (for large ones, POST /exports instead)."""
    snapshot = _snapshot(request, snapshot_id, export=True)
    if with_names and not is_admin(request.user):
        raise Http404("Not found")
    ext = ".parquet" if parquet else ".jsonl.gz" if gzip else ".jsonl"
    Path(settings.ARBITER_EXPORTS_DIR).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.ARBITER_EXPORTS_DIR) as tmp:
        path = Path(tmp) / f"{snapshot.project.slug}-snapshot{snapshot.pk}-{format}{ext}"
        try:
            export_snapshot(
                snapshot,
                path,
                fmt=format,
                style=style,
                margin=margin,
                compress=gzip,
                parquet=parquet,
                with_names=with_names,
                actor=request.user,
                via="api",
            )
        except ExportError as exc:
            return Status(400, {"detail": str(exc)})
        card_path_for(path).unlink()
        return _file_response(path, path.name)


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
    options = data.dict(exclude={"snapshot", "format"}) | {"via": "api"}
    try:
        job = start_export_job(
            project=project, actor=request.user, snapshot=snapshot, fmt=data.format, options=options
        )
    except ExportError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(202, _job_out(request, job))


def _job(request: HttpRequest, job_id: int) -> ExportJob:
    job = ExportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        raise Http404("Not found")
    if job.project.deleted_at is not None or role_in(request.user, job.project) not in RESEARCH:
        raise Http404("Not found")
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
