"""Worker liveness in the database: each Celery worker records the queues it consumes every few seconds,
so a client (`train_reward_model --wait`, the run page) can say when no worker listens on a queue."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown
from django.db import close_old_connections
from django.utils import timezone

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5
_stop = threading.Event()


def record_heartbeat(hostname: str, queues: list[str]) -> None:
    from annotate.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"queues": sorted(queues), "last_seen": timezone.now()}
    )


def live_queues(max_age_seconds: int = 3 * HEARTBEAT_SECONDS) -> set[str]:
    from annotate.models import WorkerHeartbeat

    cutoff = timezone.now() - timezone.timedelta(seconds=max_age_seconds)
    queues: set[str] = set()
    for names in WorkerHeartbeat.objects.filter(last_seen__gte=cutoff).values_list("queues", flat=True):
        queues.update(names)
    return queues


@worker_ready.connect
def _start_heartbeat(sender=None, **_: object) -> None:
    hostname = sender.hostname
    queues = [q.name for q in sender.task_consumer.queues] if sender.task_consumer else []

    def beat() -> None:
        while not _stop.is_set():
            try:
                close_old_connections()
                record_heartbeat(hostname, queues)
            except Exception:  # a database blip must not kill the worker; the next beat retries
                log.exception("worker heartbeat failed")
            _stop.wait(HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="arbiter-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(sender=None, **_: object) -> None:
    _stop.set()
    from annotate.models import WorkerHeartbeat

    try:
        WorkerHeartbeat.objects.filter(hostname=getattr(sender, "hostname", "")).delete()
    except Exception:
        log.exception("could not remove worker heartbeat")
