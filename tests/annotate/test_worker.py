"""A real Celery worker process consumes the `cpu` queue and writes to the test database."""

from __future__ import annotations

import time
import uuid

import pytest

from annotate.tasks import probe
from annotate.worker import live_queues
from config.celery import ensure_broker_folders
from projects.models import AuditEvent
from tests.servers import start_worker


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_task_from_cpu_queue(tmp_path):
    ensure_broker_folders()
    worker = start_worker(tmp_path, queues="cpu", name="cpu-only")
    try:
        token = uuid.uuid4().hex
        probe.apply_async(args=[token], queue="cpu")
        deadline = time.monotonic() + 60
        event = None
        while time.monotonic() < deadline and event is None:
            event = AuditEvent.objects.filter(action="worker.probe", data__token=token).first()
            time.sleep(0.2)
        assert event is not None, worker.output()
        assert event.target_id == "cpu"
        deadline = time.monotonic() + 20
        while "cpu" not in live_queues() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "cpu" in live_queues()
        assert "gpu" not in live_queues()
    finally:
        worker.stop()
