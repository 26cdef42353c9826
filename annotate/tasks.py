"""Celery tasks of the annotate app: thin wrappers that load ids and call services."""

from __future__ import annotations

from celery import shared_task

from .exporters import run_export_job
from .models import AuditEvent


@shared_task(name="annotate.tasks.probe", bind=True)
def probe(self, token: str) -> str:
    """Answers that a worker consumes the queue this was sent to (`manage.py check_worker`)."""
    queue = (self.request.delivery_info or {}).get("routing_key", "")
    AuditEvent.objects.create(
        action="worker.probe",
        target_type="queue",
        target_id=queue,
        data={"token": token, "hostname": self.request.hostname},
    )
    return token


@shared_task(name="annotate.tasks.run_export")
def run_export(job_id: int) -> int:
    """Run one export job (ExportJob row) on the `cpu` queue; returns the rows written."""
    return run_export_job(job_id).rows
