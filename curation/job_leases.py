"""Leases for import, export and snapshot jobs: the row is the truth, a Celery message only says "look at job N".

The same scheme as training runs (rewardtrain/runner.md):

- `claim` takes a queued job with one conditional UPDATE (queued -> running, our owner name, a fresh heartbeat,
  one more attempt), so a duplicate delivery does nothing.
- While the job runs, a `Heartbeat` thread renews `heartbeat_at` every ARBITER_JOB_HEARTBEAT_SECONDS on its own
  connection (an import runs in one transaction, so a renewal inside it would stay invisible until the end).
  When the renewal matches nothing because the row changed hands (an admin cancelled it, or the sweep
  re-queued it), the lease is lost: the job's next progress call raises `LeaseLost` and its transaction rolls
  back, so two workers never both commit one job.
- `finish` records the outcome only while we still hold the lease.
- `sweep_jobs` (beat task `curation.tasks.sweep_jobs`, command `sweep_jobs`) re-queues a running job whose
  heartbeat is older than ARBITER_JOB_LEASE_SECONDS, or fails it once it has had ARBITER_JOB_MAX_ATTEMPTS
  attempts, saying why in `note` (and in the job's error); it re-sends a queued job whose message was
  sent longer than ARBITER_JOB_QUEUED_RESEND_SECONDS ago and never picked up.
- `retry` and `cancel` are the admin's hands (admin actions, audited).
- `send_after_commit` queues the message once the row is committed; when the broker does not take it, the job
  is failed at once with that reason and `infra.jobs.QueueUnavailable` is raised (503 for the request), so no
  job stays "queued" for ever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from curation.models import ExportJob, ImportJob, JobStatus, SnapshotJob
from infra.jobs import QueueUnavailable
from projects.models import AuditEvent

log = logging.getLogger(__name__)

TASKS = {
    ImportJob: "curation.tasks.run_import",
    ExportJob: "curation.tasks.run_export",
    SnapshotJob: "curation.tasks.run_snapshot",
}
LABELS = {ImportJob: "import", ExportJob: "export", SnapshotJob: "snapshot"}
NOTE_LENGTH = ImportJob._meta.get_field("note").max_length


class LeaseLost(Exception):
    """This worker no longer holds the job: it was cancelled, or re-queued by the sweep."""


def new_owner() -> str:
    """A lease owner name unique to this attempt: host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(model, job_id: int, owner: str, **fields) -> bool:
    """Take a queued job (a conditional UPDATE: a redelivered message finds it running and does nothing)."""
    now = timezone.now()
    return bool(
        model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING,
            lease_owner=owner,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            **fields,
        )
    )


def _error_fields(model, job_id: int, reason: str) -> dict:
    """Where a job of `model` shows its error: `report["error"]` for imports, `error` for the others."""
    if model is ImportJob:
        report = ImportJob.objects.filter(pk=job_id).values_list("report", flat=True).first() or {}
        return {"report": {**report, "error": reason}}
    return {"error": reason}


def finish(model, job_id: int, owner: str, status: str, **fields) -> bool:
    """Record the outcome while we still hold the lease; False when the job changed hands meanwhile."""
    return bool(
        model.objects.filter(pk=job_id, status=JobStatus.RUNNING, lease_owner=owner).update(
            status=status, lease_owner="", finished_at=timezone.now(), **fields
        )
    )


def fail(model, job_id: int, owner: str, reason: str, **fields) -> bool:
    return finish(model, job_id, owner, JobStatus.FAILED, **_error_fields(model, job_id, reason), **fields)


class Heartbeat:
    """Renews the lease from a thread of its own while the `with` block runs; `check()` raises `LeaseLost`
    once the row is seen held by someone else (or by no one)."""

    def __init__(self, model, job_id: int, owner: str, every: float | None = None) -> None:
        self.model, self.job_id, self.owner = model, job_id, owner
        self.every = every if every is not None else settings.ARBITER_JOB_HEARTBEAT_SECONDS
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"{LABELS[self.model]} job {self.job_id}: lease lost")

    def beat(self) -> bool:
        """One renewal; False once the row is visibly someone else's. A row this connection cannot see yet
        (its creating transaction is still open) is not a lost lease."""
        mine = self.model.objects.filter(pk=self.job_id, status=JobStatus.RUNNING, lease_owner=self.owner)
        if mine.update(heartbeat_at=timezone.now()):
            return True
        return not self.model.objects.filter(pk=self.job_id).exists()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    if not self.beat():
                        log.warning("%s job %s: lease lost; stopping", LABELS[self.model], self.job_id)
                        self.lost.set()
                        return
                except DatabaseError:  # a blip: keep going; past the lease the sweep may re-queue the job
                    log.warning("%s job %s: heartbeat failed", LABELS[self.model], self.job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection goes back to the pool


# --- queueing ------------------------------------------------------------------------------------------------


def _send(model, job_id: int) -> None:
    current_app.send_task(TASKS[model], args=[job_id], queue="cpu")


def send_after_commit(model, job_id: int) -> None:
    """Send the job's message once the row is committed. When the broker refuses, fail the job with that reason
    and raise `QueueUnavailable` out of the commit (the request answers 503; nothing waits queued)."""

    def send() -> None:
        try:
            _send(model, job_id)
        except Exception as exc:
            label = LABELS[model]
            reason = (
                f"the job queue (Celery broker) is unreachable: {type(exc).__name__}: {exc}; "
                "the job was not started. Start it again once the queue is back."
            )
            log.warning("%s job %s not queued: broker unreachable: %s", label, job_id, exc)
            model.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
                status=JobStatus.FAILED,
                finished_at=timezone.now(),
                note="not queued: the broker was unreachable",
                **_error_fields(model, job_id, reason),
            )
            raise QueueUnavailable(
                f"The {label} job could not be queued: the job queue (broker) is unreachable. The job "
                f"(#{job_id}) is marked failed and nothing was started; try again in a minute."
            ) from exc

    transaction.on_commit(send, robust=False)


# --- the sweep -----------------------------------------------------------------------------------------------


def _resend_later(model, job_id: int) -> None:
    """The sweep's send: a broker that is down leaves the job queued for the next sweep to re-send."""

    def send() -> None:
        try:
            _send(model, job_id)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("%s job %s: re-send failed (%s); the next sweep retries", LABELS[model], job_id, exc)

    transaction.on_commit(send)


def _requeueable(model, job) -> str:
    """Why a stale job cannot run again ("" when it can)."""
    if model is ImportJob and not Path(job.path).exists():
        return "the uploaded file is gone"
    return ""


def sweep_jobs(*, lease_seconds: float | None = None, queued_seconds: float | None = None) -> dict:
    """Re-queue or fail running jobs whose heartbeat stopped; re-send queued jobs nobody picked up.

    Each change is a conditional UPDATE on the row as it was read, so two sweeps (or a sweep racing a worker)
    never both act on one job."""
    lease = timedelta(
        seconds=lease_seconds if lease_seconds is not None else settings.ARBITER_JOB_LEASE_SECONDS
    )
    waited = timedelta(
        seconds=queued_seconds if queued_seconds is not None else settings.ARBITER_JOB_QUEUED_RESEND_SECONDS
    )
    max_attempts = settings.ARBITER_JOB_MAX_ATTEMPTS
    now = timezone.now()
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    for model, label in LABELS.items():
        stale = model.objects.filter(status=JobStatus.RUNNING).filter(
            Q(heartbeat_at__lt=now - lease) | Q(heartbeat_at__isnull=True)
        )
        for job in stale:
            same = model.objects.filter(
                pk=job.pk,
                status=JobStatus.RUNNING,
                lease_owner=job.lease_owner,
                heartbeat_at=job.heartbeat_at,
            )
            gone = f"no heartbeat for {lease.total_seconds():g} s: worker lost during attempt {job.attempts}"
            with transaction.atomic():
                blocked = _requeueable(model, job)
                if blocked or job.attempts >= max_attempts:
                    why = f"{gone} of {max_attempts}; failed" if not blocked else f"{gone}; failed: {blocked}"
                    if same.update(
                        status=JobStatus.FAILED,
                        lease_owner="",
                        finished_at=now,
                        note=why[:NOTE_LENGTH],
                        **_error_fields(model, job.pk, why),
                    ):
                        counts["failed"] += 1
                        log.warning("%s job %s: %s", label, job.pk, why)
                elif same.update(
                    status=JobStatus.QUEUED, lease_owner="", heartbeat_at=now, note=f"{gone}; re-queued"
                ):
                    counts["requeued"] += 1
                    log.warning("%s job %s: %s; re-queued", label, job.pk, gone)
                    _resend_later(model, job.pk)
        forgotten = model.objects.filter(status=JobStatus.QUEUED).filter(
            Q(heartbeat_at__lt=now - waited) | Q(heartbeat_at__isnull=True, created_at__lt=now - waited)
        )
        for job in forgotten:
            with transaction.atomic():
                if model.objects.filter(
                    pk=job.pk, status=JobStatus.QUEUED, heartbeat_at=job.heartbeat_at
                ).update(heartbeat_at=now):
                    counts["resent"] += 1
                    _resend_later(model, job.pk)
    return counts


# --- an admin's hands ----------------------------------------------------------------------------------------


def _audit(actor, action: str, job) -> None:
    AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        action=action,
        project_id=job.project_id,
        target_type=f"{LABELS[type(job)]}_job",
        target_id=str(job.pk),
        data={"status_before": job.status, "attempts": job.attempts},
    )


class JobActionError(ValueError):
    pass


def retry(job, *, actor) -> None:
    """Queue a failed or cancelled job again (attempts start over); audited. `JobActionError` says why not."""
    model = type(job)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise JobActionError(
            f"{LABELS[model]} job {job.pk} is {job.status}; only a failed or cancelled job is retried"
        )
    if blocked := _requeueable(model, job):
        raise JobActionError(
            f"{LABELS[model]} job {job.pk} cannot run again: {blocked}; upload the file again"
        )
    who = actor.get_username() if actor else "an admin"
    fields = {
        "status": JobStatus.QUEUED,
        "attempts": 0,
        "lease_owner": "",
        "heartbeat_at": timezone.now(),
        "finished_at": None,
        "note": f"retried by {who}"[:NOTE_LENGTH],
    }
    if model is ImportJob:
        fields |= {"progress": 0.0, "report": {k: v for k, v in job.report.items() if k == "options"}}
    elif model is ExportJob:
        fields |= {"progress": 0.0, "error": ""}
    else:
        fields["error"] = ""
    with transaction.atomic():
        if not model.objects.filter(pk=job.pk, status=job.status).update(**fields):
            raise JobActionError(f"{LABELS[model]} job {job.pk} changed meanwhile; look again")
        _audit(actor, f"{LABELS[model]}_job.retried", job)
        send_after_commit(model, job.pk)


def cancel(job, *, actor) -> None:
    """Cancel a queued or running job; a running worker sees its lease gone and rolls back. Audited."""
    model = type(job)
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise JobActionError(
            f"{LABELS[model]} job {job.pk} is {job.status}; only a queued or running job is cancelled"
        )
    who = actor.get_username() if actor else "an admin"
    with transaction.atomic():
        if not model.objects.filter(pk=job.pk, status=job.status).update(
            status=JobStatus.CANCELLED,
            lease_owner="",
            finished_at=timezone.now(),
            note=f"cancelled by {who}"[:NOTE_LENGTH],
        ):
            raise JobActionError(f"{LABELS[model]} job {job.pk} changed meanwhile; look again")
        _audit(actor, f"{LABELS[model]}_job.cancelled", job)
    if model is ImportJob and job.status == JobStatus.QUEUED:
        Path(job.path).unlink(missing_ok=True)  # no worker holds it; a running one removes it itself
