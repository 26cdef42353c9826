"""Import jobs from the upload page: the ImportJob row is the truth; progress goes to the cache.

The import runs in one transaction, so progress written to the database would stay invisible until the end
(and on SQLite would wait on the import's own write lock); it goes to the shared cache instead, and the row
gets the final status and report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.core.cache import cache
from django.utils import timezone

from curation.importers import ImportFailed, import_file
from curation.models import ImportJob

log = logging.getLogger(__name__)


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
