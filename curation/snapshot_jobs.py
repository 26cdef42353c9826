"""Snapshot jobs: a page or the API asks for a snapshot, a Celery task (`cpu` queue) freezes it.

A large project's snapshot takes tens of seconds, so no request freezes one. `start_snapshot_job` checks the
options in the request (a bad one raises at once and nothing is queued), records a `SnapshotJob` and sends
the task once the row is committed; `run_snapshot_job` (the task's body) claims the row, calls
`create_snapshot` and records the outcome on the row: the snapshot, or the error. A job from the export page
carries the export to start once its snapshot exists (`then_export`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from curation import job_leases
from curation.exporters import can_export, check_export_options, start_export_job
from curation.models import DatasetSnapshot, SnapshotJob
from curation.snapshots import create_snapshot, snapshot_options
from insights.consensus import ConsensusError
from projects.models import Project

log = logging.getLogger(__name__)
NAME_LENGTH = DatasetSnapshot._meta.get_field("name").max_length


def start_snapshot_job(
    *,
    project: Project,
    actor,
    aggregation: str = "majority",
    axis: str = "overall",
    exclude=(),
    min_agreement: float | None = None,
    name: str = "",
    then_export: dict[str, Any] | None = None,
) -> SnapshotJob:
    """Check the options (`ConsensusError`, or `ExportError` for `then_export`), record the job, queue it
    on the `cpu` queue after commit (a broker that is down fails the job and raises
    `infra.jobs.QueueUnavailable`). `then_export` is {"format": …, "options": {…}} for `start_export_job`."""
    options = snapshot_options(
        aggregation=aggregation, axis=axis, exclude=exclude, min_agreement=min_agreement
    )
    name = (name or "").strip()
    if len(name) > NAME_LENGTH:
        raise ConsensusError(f"name: at most {NAME_LENGTH} characters, not {len(name)}")
    options["name"] = name
    if then_export is not None:
        check_export_options(then_export["format"], then_export["options"])
        options["then_export"] = {"format": then_export["format"], "options": dict(then_export["options"])}
    with transaction.atomic():
        job = SnapshotJob.objects.create(project=project, created_by=actor, options=options)
        job_leases.send_after_commit(SnapshotJob, job.pk)
    return job


def _finish(job_id: int, owner: str, status: str, **fields) -> SnapshotJob:
    if not job_leases.finish(SnapshotJob, job_id, owner, status, **fields):
        log.warning("snapshot job %s: finished after its lease was taken away; outcome not recorded", job_id)
    return SnapshotJob.objects.select_related("project", "created_by", "snapshot").get(pk=job_id)


def run_snapshot_job(job_id: int) -> SnapshotJob:
    """Claim a queued job (a conditional UPDATE, so a redelivered task does nothing), freeze the snapshot under a
    lease (curation/job_leases.py), record the outcome; then start the export the job carries, if any. A bad
    option (`ConsensusError`) fails the job with its message; any other error fails it too and is raised again
    for the worker's log. A job whose lease was lost meanwhile (cancelled, re-queued) records nothing."""
    owner = job_leases.new_owner()
    claimed = job_leases.claim(SnapshotJob, job_id, owner, started_at=timezone.now())
    job = SnapshotJob.objects.select_related("project", "created_by", "snapshot").get(pk=job_id)
    if not claimed:
        return job
    if job.project.deleted_at is not None:
        return _finish(job_id, owner, SnapshotJob.Status.FAILED, error="the project was deleted")
    opts = job.options
    then = opts.get("then_export")
    with job_leases.Heartbeat(SnapshotJob, job_id, owner) as lease:
        try:
            with transaction.atomic():
                snapshot = create_snapshot(
                    project=job.project,
                    actor=job.created_by,
                    aggregation=opts.get("aggregation", "majority"),
                    axis=opts.get("axis", "overall"),
                    exclude=opts.get("exclude", ()),
                    min_agreement=opts.get("min_agreement"),
                    name=opts.get("name", ""),
                )
                same = identical_snapshot(snapshot) if then else None
                if same is not None:
                    # An export of an unchanged selection: reuse its snapshot rather than keep an identical one.
                    transaction.set_rollback(True)
                    snapshot = same
        except ConsensusError as exc:
            return _finish(job_id, owner, SnapshotJob.Status.FAILED, error=str(exc))
        except Exception as exc:
            _finish(job_id, owner, SnapshotJob.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
    if lease.lost.is_set():  # cancelled or re-queued meanwhile: its new owner's word stands, no export starts
        log.warning("snapshot job %s: lease lost; snapshot %s made, not recorded", job_id, snapshot.pk)
        return SnapshotJob.objects.select_related("project", "created_by", "snapshot").get(pk=job_id)
    export_job, error = None, ""
    if then:
        user = job.created_by
        if user is not None and can_export(user, job.project):
            export_job = start_export_job(
                project=job.project,
                actor=user,
                snapshot=snapshot,
                fmt=then["format"],
                options=then["options"],
            )
        else:
            error = "snapshot made; the export was not started: its author may no longer export this project"
    return _finish(
        job_id, owner, SnapshotJob.Status.SUCCEEDED, snapshot=snapshot, export_job=export_job, error=error
    )


def identical_snapshot(snapshot: DatasetSnapshot) -> DatasetSnapshot | None:
    """The newest earlier snapshot of the same project with the same options and the same pairs (hash)."""
    return (
        DatasetSnapshot.objects.filter(
            project_id=snapshot.project_id,
            aggregation=snapshot.aggregation,
            axis=snapshot.axis,
            filters=snapshot.filters,
            content_hash=snapshot.content_hash,
        )
        .exclude(pk=snapshot.pk)
        .order_by("-created_at", "-pk")
        .first()
    )


def pending_snapshot_jobs(project: Project, limit: int = 20) -> list[SnapshotJob]:
    """The project's snapshot jobs still to show on its pages: queued, running, or failed."""
    return list(
        project.snapshot_jobs.exclude(status=SnapshotJob.Status.SUCCEEDED)
        .select_related("created_by")
        .order_by("-created_at")[:limit]
    )


def snapshot_job_as_dict(job: SnapshotJob) -> dict[str, Any]:
    options = {k: v for k, v in job.options.items() if k != "then_export"}
    return {
        "id": job.pk,
        "project": job.project.slug,
        "options": options,
        "status": job.status,
        "snapshot": job.snapshot_id,
        "error": job.error,
        "created_by": job.created_by.get_username() if job.created_by else None,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
