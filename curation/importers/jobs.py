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

from django.core.cache import cache
from django.db import transaction

from curation import job_leases
from curation.importers import FORMATS, ImportFailed, import_file
from curation.models import ImportJob
from infra.best_effort import cache_call
from infra.uploads import DiskUpload, uploads_dir
from projects.models import Project

log = logging.getLogger(__name__)


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
    ARBITER_IMPORTS_DIR, record an ImportJob, queue `run_import` on the `cpu` queue once the row is committed
    (a broker that is down fails the job and raises `infra.jobs.QueueUnavailable`, see curation/job_leases.py).
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
        job_leases.send_after_commit(ImportJob, job.pk)
    return job


def progress_key(job_id: int) -> str:
    return f"import-progress:{job_id}"


def job_progress(job: ImportJob) -> float:
    if job.status == ImportJob.Status.RUNNING:  # the cache is best-effort; the row still answers
        return float(
            cache_call("import progress", cache.get, progress_key(job.pk), job.progress, default=job.progress)
        )
    return job.progress


def _set_progress(job_id: int, fraction: float) -> None:
    cache_call("import progress", cache.set, progress_key(job_id), round(fraction, 4), 6 * 3600)


def run_import_job(*, job_id: int) -> ImportJob | None:
    """Claim a queued job (a conditional UPDATE, so a redelivered task does nothing) and run it under a lease
    (curation/job_leases.py): when the lease is lost mid-run (cancelled, or re-queued by the sweep) the import
    rolls back at its next batch. The uploaded file goes once the outcome is final (imported, or refused as bad
    input); after a crash it stays, so the sweep's re-queue or an admin's retry can run it again."""
    owner = job_leases.new_owner()
    if not job_leases.claim(ImportJob, job_id, owner):
        return None
    job = ImportJob.objects.select_related("project", "created_by").get(pk=job_id)
    path = Path(job.path)
    with job_leases.Heartbeat(ImportJob, job_id, owner) as lease:

        def progress(fraction: float) -> None:
            if fraction < 1.0:  # 1.0 is reported after the commit: nothing left to roll back
                lease.check()
            _set_progress(job_id, fraction)

        try:
            report = import_file(
                path,
                project=job.project,
                fmt=job.format,
                source=job.source or None,
                skip_invalid=job.skip_invalid,
                progress=progress,
                actor=job.created_by,
                add_harm_categories=bool((job.report or {}).get("options", {}).get("add_harm_categories")),
            )
            status, outcome = ImportJob.Status.SUCCEEDED, report.as_dict()
        except ImportFailed as e:
            status, outcome = ImportJob.Status.FAILED, e.report.as_dict()
        except job_leases.LeaseLost:
            log.warning("import job %s: lease lost mid-run; rolled back", job_id)
            if ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.CANCELLED).exists():
                path.unlink(missing_ok=True)
            return None
        except Exception as e:
            job_leases.fail(ImportJob, job_id, owner, f"{type(e).__name__}: {e}", progress=1.0)
            raise
    path.unlink(missing_ok=True)
    if not job_leases.finish(ImportJob, job_id, owner, status, report=outcome, progress=1.0):
        log.warning("import job %s: finished after its lease was taken away", job_id)
    job.refresh_from_db()
    return job
