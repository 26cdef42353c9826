"""The train_run task and its runner: a duplicate delivery does not train twice, crashes are retried a bounded
number of times, a claim held by a live runner is left alone, and cancel stops the trainer."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
from config.celery import ensure_broker_folders
from rewardtrain import runner, services
from rewardtrain.models import ModelVersion, TrainingRun
from tests.rewardtrain.apphelpers import FAST, make_snapshot, run_row, tiny_base_model, wait_for
from tests.servers import start_worker


def _start_events(run: TrainingRun) -> int:
    lines = (Path(run.output_dir) / "progress.jsonl").read_text().splitlines()
    return sum(1 for line in lines if json.loads(line)["event"] == "start")


@pytest.mark.django_db(transaction=True)
def test_duplicate_delivery_while_running_does_not_train_twice(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    ensure_broker_folders()
    celery_app.control.purge()
    snapshot = make_snapshot(project, 48)
    config = {**FAST, "epochs": 2, "batch_size": 4, "progress_every": 1}
    workers = [start_worker(tmp_path, queues="cpu", name=f"dup{i}") for i in (1, 2)]
    try:
        run = services.start_run(
            project=project,
            objective="bt",
            base_model=tiny_base_model(),
            snapshot=snapshot,
            config=config,
            queue="cpu",
        )
        wait_for(lambda: run_row(run.pk).status == "running", 120, "the run to start", workers)
        # The same message again while the first delivery trains: the idle worker takes it.
        celery_app.send_task(services.TRAIN_TASK, args=[run.pk], queue="cpu")
        wait_for(lambda: run_row(run.pk).status == "succeeded", 180, "the run to end", workers)
        wait_for(lambda: "'skipped'" in "".join(w.output() for w in workers), 60, "the duplicate", workers)
        # The worker logs the first delivery's return value after the run row is committed: wait for it too.
        wait_for(
            lambda: "'succeeded'" in "".join(w.output() for w in workers), 60, "the first delivery", workers
        )
        row = run_row(run.pk)
        assert row.attempt == 1
        assert _start_events(row) == 1  # the trainer was launched once
        assert ModelVersion.objects.filter(run=row).count() == 1
    finally:
        for worker in workers:
            worker.stop()


@pytest.mark.django_db
def test_run_held_by_a_live_runner_is_not_claimed_but_a_stale_one_is(project, settings):
    snapshot = make_snapshot(project, 4)
    run = services.start_run(project=project, objective="bt", base_model="x", snapshot=snapshot, config={})
    assert runner.claim_run(run.pk, "first") is not None
    assert runner.execute_run(run.pk, owner="second") == "skipped"
    assert run_row(run.pk).lease_owner == "first" and run_row(run.pk).attempt == 1

    TrainingRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timezone.timedelta(seconds=settings.ARBITER_RUN_LEASE_SECONDS + 5)
    )
    claimed = runner.claim_run(run.pk, "second")
    assert claimed is not None and claimed.lease_owner == "second" and claimed.attempt == 2
    # The first runner's next heartbeat finds it lost the lease.
    assert runner.heartbeat(run.pk, "first") is None


@pytest.mark.django_db
def test_trainer_crash_is_retried_then_the_run_fails_after_max_attempts(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    settings.ARBITER_RUN_MAX_ATTEMPTS = 2
    snapshot = make_snapshot(project, 4)
    run = services.start_run(
        project=project,
        objective="bt",
        base_model=str(tmp_path / "no-such-model"),
        snapshot=snapshot,
        config={},
    )
    assert runner.execute_run(run.pk) == "requeued"
    row = run_row(run.pk)
    assert row.status == "queued" and row.attempt == 1 and "attempt 1 failed" in row.error
    assert runner.execute_run(run.pk) == "failed"
    row = run_row(run.pk)
    assert row.status == "failed" and row.attempt == 2 and row.finished_at is not None
    assert runner.execute_run(run.pk) == "skipped"
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_trainer_and_registers_no_model(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    snapshot = make_snapshot(project, 48)
    config = {**FAST, "epochs": 40, "batch_size": 4, "progress_every": 1}
    run = services.start_run(
        project=project,
        objective="bt",
        base_model=tiny_base_model(),
        snapshot=snapshot,
        config=config,
        enqueue=False,
    )
    outcome = {}

    def train() -> None:
        try:
            outcome["result"] = runner.execute_run(run.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=train)
    thread.start()
    try:
        wait_for(lambda: run_row(run.pk).progress.get("step"), 120, "training to start")
        services.cancel_run(run=run_row(run.pk))
    finally:
        thread.join(120)
    assert outcome["result"] == "cancelled"
    row = run_row(run.pk)
    assert row.status == "cancelled" and row.progress["step"] < row.progress["total_steps"]
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_cancelling_a_queued_run_ends_it_at_once(project):
    snapshot = make_snapshot(project, 4)
    run = services.start_run(project=project, objective="bt", base_model="x", snapshot=snapshot, config={})
    assert services.cancel_run(run=run).status == "cancelled"
    assert runner.execute_run(run.pk) == "skipped"


@pytest.mark.django_db
def test_foreground_retries_a_crashed_attempt_in_process_until_attempts_run_out(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    settings.ARBITER_RUN_MAX_ATTEMPTS = 2
    snapshot = make_snapshot(project, 4)
    run = services.start_run(
        project=project,
        objective="bt",
        base_model=str(tmp_path / "missing"),
        snapshot=snapshot,
        config={},
        enqueue=False,
    )
    assert runner.run_in_foreground(run.pk) == "failed"
    row = run_row(run.pk)
    assert row.status == "failed" and row.attempt == 2
    assert (Path(row.output_dir) / "trainer-attempt-2.log").exists()


@pytest.mark.django_db
def test_sweep_resends_forgotten_runs_and_ends_stale_ones_out_of_attempts_or_cancelled(project):
    snapshot = make_snapshot(project, 4)
    long_ago = timezone.now() - timezone.timedelta(hours=2)

    def new_run(**fields) -> TrainingRun:
        run = services.start_run(
            project=project, objective="bt", base_model="x", snapshot=snapshot, config={}
        )
        TrainingRun.objects.filter(pk=run.pk).update(**fields)
        return run

    forgotten = new_run(created_at=long_ago)
    waiting = new_run()
    exhausted = new_run(
        status="running", attempt=3, max_attempts=3, heartbeat_at=long_ago, lease_owner="gone"
    )
    cancelled = new_run(status="running", attempt=1, heartbeat_at=long_ago, cancel_requested=True)
    alive = new_run(status="running", attempt=1, heartbeat_at=timezone.now(), lease_owner="busy")

    counts = services.sweep_runs(lease_seconds=60, queued_seconds=600)
    assert counts == {"requeued": 0, "resent": 1, "failed": 1, "cancelled": 1}
    assert run_row(forgotten.pk).status == "queued" and run_row(forgotten.pk).heartbeat_at is not None
    assert run_row(waiting.pk).heartbeat_at is None
    assert run_row(exhausted.pk).status == "failed" and "worker lost" in run_row(exhausted.pk).error
    assert run_row(cancelled.pk).status == "cancelled"
    assert run_row(alive.pk).status == "running" and run_row(alive.pk).lease_owner == "busy"
    # A second sweep right after finds nothing to do (the resend time was recorded).
    assert services.sweep_runs(lease_seconds=60, queued_seconds=600) == dict.fromkeys(counts, 0)
