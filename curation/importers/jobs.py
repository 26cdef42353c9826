"""Import jobs from the upload page: the ImportJob row is the truth; progress goes to the cache.

The import runs in one transaction, so progress written to the database would stay invisible until the end
(and on SQLite would wait on the import's own write lock); it goes to the shared cache instead, and the row
gets the final status and report.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

from celery import current_app
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from curation.importers import FORMATS, ImportFailed, import_file
from curation.models import ImportJob
from infra.uploads import DiskUpload, uploads_dir
from projects.models import Project

log = logging.getLogger(__name__)
IMPORT_TASK = "curation.tasks.run_import"


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-120:] or "upload"


def start_import_job(
    *,
    project: Project,
    actor,
    upload,
    fmt: str,
    source: str = "",
    skip_invalid: bool = False,
    add_harm_categories: bool = False,
) -> ImportJob:
    """The one way an upload becomes an import (the import page and the API): store the file in
    ARBITER_IMPORTS_DIR, record an ImportJob, queue `run_import` on the `cpu` queue once the row is committed.
    `upload` is a Django UploadedFile (a `DiskUpload` already on disk is moved, not copied)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    filename = upload.name or "upload.jsonl"
    dest = uploads_dir() / f"{uuid.uuid4().hex}-{safe_name(filename)}"
    if isinstance(upload, DiskUpload):
        upload.path.replace(dest)
    else:
        with open(dest, "wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
    with transaction.atomic():
        job = ImportJob.objects.create(
            project=project,
            created_by=actor,
            format=fmt,
            source=(source or "").strip(),
            skip_invalid=skip_invalid,
            filename=filename[:300],
            path=str(dest),
            size_bytes=upload.size or dest.stat().st_size,
            report={"options": {"add_harm_categories": add_harm_categories}},
        )
        job_id = job.pk
        transaction.on_commit(lambda: current_app.send_task(IMPORT_TASK, args=[job_id], queue="cpu"))
    return job


def progress_key(job_id: int) -> str:
    return f"import-progress:{job_id}"


def job_progress(job: ImportJob) -> float:
    if job.status == ImportJob.Status.RUNNING:
        try:
            return float(cache.get(progress_key(job.pk), job.progress))
        except Exception:  # noqa: BLE001 - the cache is best-effort; the row still answers
            log.warning("import progress cache unavailable", exc_info=True)
    return job.progress


def _set_progress(job_id: int, fraction: float) -> None:
    try:
        cache.set(progress_key(job_id), round(fraction, 4), 6 * 3600)
    except Exception:  # noqa: BLE001 - best-effort, see module docstring
        log.warning("could not publish import progress", exc_info=True)


def run_import_job(*, job_id: int) -> ImportJob | None:
    """Claim a queued job (a conditional UPDATE, so a redelivered task does nothing) and run it."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING
    )
    if not claimed:
        return None
    job = ImportJob.objects.select_related("project", "created_by").get(pk=job_id)
    path = Path(job.path)
    try:
        report = import_file(
            path,
            project=job.project,
            fmt=job.format,
            source=job.source or None,
            skip_invalid=job.skip_invalid,
            progress=lambda f: _set_progress(job_id, f),
            actor=job.created_by,
            add_harm_categories=bool((job.report or {}).get("options", {}).get("add_harm_categories")),
        )
        job.status, job.report = ImportJob.Status.SUCCEEDED, report.as_dict()
    except ImportFailed as e:
        job.status, job.report = ImportJob.Status.FAILED, e.report.as_dict()
    except Exception as e:
        job.status, job.report = ImportJob.Status.FAILED, {"error": f"{type(e).__name__}: {e}"}
        job.progress, job.finished_at = 1.0, timezone.now()
        job.save(update_fields=["status", "report", "progress", "finished_at"])
        raise
    finally:
        path.unlink(missing_ok=True)
    job.progress, job.finished_at = 1.0, timezone.now()
    job.save(update_fields=["status", "report", "progress", "finished_at"])
    return job
