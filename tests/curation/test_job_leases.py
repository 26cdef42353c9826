"""Import, export and snapshot jobs hold a lease (curation/job_leases.py), like training runs: a job whose worker
died (the row says "running", nobody renews its heartbeat) is re-queued by the sweep, or failed with a visible
reason once out of attempts; a message that never arrived is re-sent; an admin retries or cancels (audited), and
a cancelled job's worker finds its lease gone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotate.models import Comparison
from config.celery import app as celery_app
from curation import job_leases
from curation.exporters import run_export_job, start_export_job
from curation.importers.jobs import run_import_job, start_import_job
from curation.models import ExportJob, ImportJob, SnapshotJob
from curation.snapshot_jobs import run_snapshot_job, start_snapshot_job
from projects.models import AuditEvent
from tests.conftest import login, make_user
from tests.factories import two_pair_snapshot

DEAD = "dead-host:4242:deadbeef"  # the owner name of a worker that was killed -9
LINE = (
    b'{"prompt": "Hi", "chosen": [{"role": "assistant", "content": "Hello"}], '
    b'"rejected": [{"role": "assistant", "content": "Go away"}]}\n'
)


@pytest.fixture(autouse=True)
def folders(settings, tmp_path):
    settings.ARBITER_IMPORTS_DIR, settings.ARBITER_EXPORTS_DIR = tmp_path / "imports", tmp_path / "exports"


@pytest.fixture
def snapshot(project):
    return two_pair_snapshot(project)


@pytest.fixture
def superuser(db):
    return make_user("root", is_staff=True, is_superuser=True)


def queued_import(project, actor, capture) -> ImportJob:
    with capture() as sent:
        job = start_import_job(
            project=project, actor=actor, upload=SimpleUploadedFile("pairs.jsonl", LINE), fmt="trl"
        )
    assert len(sent) == 1
    return job


def test_an_import_whose_worker_died_is_requeued_by_the_sweep_and_then_runs(
    project, admin_user, django_capture_on_commit_callbacks
):
    job = queued_import(project, admin_user, django_capture_on_commit_callbacks)
    assert job_leases.claim(ImportJob, job.pk, DEAD)  # the worker took it, then was killed: no heartbeat since
    with django_capture_on_commit_callbacks() as sent:
        counts = job_leases.sweep_jobs(lease_seconds=0)
    assert counts == {"requeued": 1, "failed": 0, "resent": 0}
    assert len(sent) == 1  # the message goes out again
    job.refresh_from_db()
    assert (job.status, job.lease_owner, job.attempts) == ("queued", "", 1)
    assert "worker lost during attempt 1; re-queued" in job.note
    assert Path(job.path).exists()  # the upload waits for the next attempt
    done = run_import_job(job_id=job.pk)
    assert (done.status, done.attempts, done.lease_owner) == ("succeeded", 2, "")
    assert Comparison.objects.filter(project=project).count() == 1
    assert not Path(job.path).exists()


def test_a_job_out_of_attempts_is_failed_with_a_visible_reason(project, snapshot, settings):
    settings.ARBITER_JOB_MAX_ATTEMPTS = 1
    job = start_export_job(project=project, actor=None, snapshot=snapshot, fmt="trl", options={})
    assert job_leases.claim(ExportJob, job.pk, DEAD)
    assert job_leases.sweep_jobs(lease_seconds=0) == {"requeued": 0, "failed": 1, "resent": 0}
    job.refresh_from_db()
    assert job.status == "failed" and job.finished_at is not None
    assert "worker lost during attempt 1 of 1" in job.error and job.error.startswith(job.note[:40])


def test_a_fresh_heartbeat_is_left_alone(project, snapshot):
    job = start_export_job(project=project, actor=None, snapshot=snapshot, fmt="trl", options={})
    assert job_leases.claim(ExportJob, job.pk, "alive:1:x")
    assert job_leases.sweep_jobs(lease_seconds=3600) == {"requeued": 0, "failed": 0, "resent": 0}
    assert ExportJob.objects.get(pk=job.pk).status == "running"


def test_a_queued_job_whose_message_was_lost_is_sent_again(project, admin_user, django_capture_on_commit_callbacks):
    job = SnapshotJob.objects.create(project=project, created_by=admin_user)
    SnapshotJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks() as sent:
        assert job_leases.sweep_jobs(queued_seconds=60)["resent"] == 1
    assert len(sent) == 1
    with django_capture_on_commit_callbacks() as again:
        assert job_leases.sweep_jobs(queued_seconds=60)["resent"] == 0  # sent just now: not again yet
    assert not again


def test_cancel_takes_the_lease_away_and_is_audited(project, snapshot, admin_user):
    job = start_export_job(project=project, actor=admin_user, snapshot=snapshot, fmt="trl", options={})
    owner = job_leases.new_owner()
    assert job_leases.claim(ExportJob, job.pk, owner)
    beat = job_leases.Heartbeat(ExportJob, job.pk, owner)
    assert beat.beat()  # ours: renewed
    job_leases.cancel(ExportJob.objects.get(pk=job.pk), actor=admin_user)
    assert not beat.beat()  # the worker's next renewal finds the job gone from it, and stops
    assert not job_leases.finish(ExportJob, job.pk, owner, "succeeded")  # its outcome is not recorded
    job.refresh_from_db()
    assert (job.status, job.note) == ("cancelled", f"cancelled by {admin_user.username}")
    event = AuditEvent.objects.get(action="export_job.cancelled")
    assert (event.actor, event.target_id, event.data["status_before"]) == (admin_user, str(job.pk), "running")
    with pytest.raises(job_leases.JobActionError, match="only a queued or running job"):
        job_leases.cancel(job, actor=admin_user)


def test_a_worker_that_lost_its_lease_stops_and_records_nothing(project, snapshot, admin_user, settings):
    settings.ARBITER_JOB_HEARTBEAT_SECONDS = 0.0
    job = start_export_job(project=project, actor=admin_user, snapshot=snapshot, fmt="trl", options={})
    owner = job_leases.new_owner()
    assert job_leases.claim(ExportJob, job.pk, owner)
    job_leases.cancel(ExportJob.objects.get(pk=job.pk), actor=admin_user)
    heartbeat = job_leases.Heartbeat(ExportJob, job.pk, owner)
    assert not heartbeat.beat()
    heartbeat.lost.set()  # what the heartbeat thread does on that answer
    with pytest.raises(job_leases.LeaseLost):
        heartbeat.check()


def test_admin_retries_failed_jobs_from_the_admin_and_it_is_audited(
    client, project, snapshot, superuser, django_capture_on_commit_callbacks
):
    job = start_export_job(project=project, actor=superuser, snapshot=snapshot, fmt="trl", options={})
    assert job_leases.claim(ExportJob, job.pk, DEAD)
    assert job_leases.fail(ExportJob, job.pk, DEAD, "worker lost")
    login(client, superuser)
    with django_capture_on_commit_callbacks(execute=True) as sent:
        response = client.post(
            "/admin/curation/exportjob/", {"action": "retry_jobs", "_selected_action": [job.pk]}, follow=True
        )
    assert response.status_code == 200 and b"1 job(s) queued again" in response.content
    assert len(sent) == 1
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error, job.note) == ("queued", 0, "", "retried by root")
    assert AuditEvent.objects.filter(action="export_job.retried", target_id=str(job.pk), actor=superuser).exists()
    assert run_export_job(job.pk).status == "succeeded"


def test_admin_cancels_a_queued_import_and_its_upload_goes(
    client, project, admin_user, superuser, django_capture_on_commit_callbacks
):
    job = queued_import(project, admin_user, django_capture_on_commit_callbacks)
    login(client, superuser)
    response = client.post(
        "/admin/curation/importjob/", {"action": "cancel_jobs", "_selected_action": [job.pk]}, follow=True
    )
    assert b"1 job(s) cancelled" in response.content
    job.refresh_from_db()
    assert job.status == "cancelled" and not Path(job.path).exists()
    assert run_import_job(job_id=job.pk) is None  # a message still on its way does nothing
    assert AuditEvent.objects.filter(action="import_job.cancelled", target_id=str(job.pk)).exists()


def test_retry_refuses_an_import_whose_upload_is_gone(project, admin_user, django_capture_on_commit_callbacks):
    job = queued_import(project, admin_user, django_capture_on_commit_callbacks)
    Path(job.path).unlink()
    job_leases.claim(ImportJob, job.pk, DEAD)
    job_leases.sweep_jobs(lease_seconds=0)
    job.refresh_from_db()
    assert job.status == "failed" and "the uploaded file is gone" in job.report["error"]
    with pytest.raises(job_leases.JobActionError, match="upload the file again"):
        job_leases.retry(job, actor=admin_user)


def test_snapshot_jobs_take_the_lease_too(project, snapshot, admin_user):
    job = start_snapshot_job(project=project, actor=admin_user)
    done = run_snapshot_job(job.pk)
    assert (done.status, done.attempts, done.lease_owner) == ("succeeded", 1, "")
    assert done.heartbeat_at is not None


def test_the_beat_schedule_sweeps_the_jobs():
    tasks = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert "curation.tasks.sweep_jobs" in tasks


def test_the_import_page_says_a_requeued_job_was_requeued_and_a_cancelled_one_stopped(
    client, project, admin_user, django_capture_on_commit_callbacks
):
    job = queued_import(project, admin_user, django_capture_on_commit_callbacks)
    job_leases.claim(ImportJob, job.pk, DEAD)
    job_leases.sweep_jobs(lease_seconds=0)
    page = login(client, admin_user).get(f"/imports/{job.pk}/")
    assert page.status_code == 200 and "worker lost during attempt 1; re-queued" in page.content.decode()
    job_leases.cancel(ImportJob.objects.get(pk=job.pk), actor=admin_user)
    page = client.get(f"/imports/{job.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert f"cancelled by {admin_user.username}" in page and "Nothing was committed" in page
    assert "hx-trigger" not in page  # done: the page stops polling
