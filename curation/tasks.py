"""Celery tasks of the curation app (queue `cpu`): thin wrappers that call a job row's service."""

from __future__ import annotations

import logging

from celery import shared_task

from curation import job_leases
from curation.exporters import run_export_job
from curation.importers.jobs import run_import_job
from curation.snapshot_jobs import run_snapshot_job

log = logging.getLogger(__name__)


@shared_task(name="curation.tasks.run_export")
def run_export(job_id: int) -> int:
    """Run one export job (ExportJob row) on the `cpu` queue; returns the rows written."""
    return run_export_job(job_id).rows


@shared_task(name="curation.tasks.run_import")
def run_import(job_id: int) -> str | None:
    """Runs an uploaded import (queue `cpu`); the ImportJob row records the outcome."""
    job = run_import_job(job_id=job_id)
    return None if job is None else job.status


@shared_task(name="curation.tasks.run_snapshot")
def run_snapshot(job_id: int) -> str:
    """Freeze one snapshot (SnapshotJob row) on the `cpu` queue; the row records the outcome."""
    return run_snapshot_job(job_id).status


@shared_task(name="curation.tasks.sweep_jobs")
def sweep_jobs() -> dict:
    """Beat task: re-queue or fail import, export and snapshot jobs whose heartbeat stopped; re-send queued
    ones nobody picked up (curation/job_leases.py)."""
    counts = job_leases.sweep_jobs()
    if any(counts.values()):
        log.info("job sweep: %s", counts)
    return counts
