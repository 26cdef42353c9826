"""Celery tasks of the annotate app: the worker probe (`manage.py check_worker`)."""

from __future__ import annotations

from celery import shared_task

from projects.models import AuditEvent


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
