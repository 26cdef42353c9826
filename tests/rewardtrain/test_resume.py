"""A worker killed mid-run (kill -9, with its trainer) comes back: the sweep re-queues the run, a new worker
resumes it from its last checkpoint, and the run ends with exactly one model version."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from config.celery import app as celery_app
from config.celery import ensure_broker_folders
from rewardtrain import services
from rewardtrain.models import ModelVersion
from rewardtrain.trainer import checkpoints
from tests.rewardtrain.apphelpers import FAST, make_snapshot, run_row, tiny_base_model, wait_for
from tests.servers import start_worker


@pytest.mark.django_db(transaction=True)
def test_killed_worker_run_is_requeued_and_resumes_from_its_checkpoint(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    ensure_broker_folders()
    celery_app.control.purge()
    snapshot = make_snapshot(project, 64)
    config = {**FAST, "epochs": 3, "batch_size": 4, "checkpoint_every": 2, "progress_every": 1}
    run = services.start_run(
        project=project,
        objective="bt",
        base_model=tiny_base_model(),
        snapshot=snapshot,
        config=config,
        queue="cpu",
    )
    first = start_worker(tmp_path, queues="cpu", name="first")
    second = None
    try:
        wait_for(lambda: run_row(run.pk).last_checkpoint, 120, "a checkpoint", [first])
        row = run_row(run.pk)
        assert row.status == "running" and row.attempt == 1
        trainer_pid = row.progress["trainer_pid"]
        os.kill(first.proc.pid, signal.SIGKILL)
        os.kill(trainer_pid, signal.SIGKILL)
        first.proc.wait(10)
        # The trainer may have written a newer checkpoint than the progress row shows: what counts is the
        # newest complete checkpoint on disk when it died.
        on_disk = checkpoints.latest(Path(run_row(run.pk).output_dir) / "checkpoints")
        assert on_disk is not None
        killed_at_step = on_disk.step
        assert killed_at_step < run_row(run.pk).progress["total_steps"]

        # Nothing re-queues a run whose lease is still fresh.
        assert services.sweep_runs(lease_seconds=60)["requeued"] == 0
        time.sleep(1.5)
        assert services.sweep_runs(lease_seconds=1)["requeued"] == 1
        assert run_row(run.pk).status == "queued"

        second = start_worker(tmp_path, queues="cpu", name="second")
        wait_for(lambda: run_row(run.pk).status in ("succeeded", "failed"), 180, "the run to end", [second])
        row = run_row(run.pk)
        assert row.status == "succeeded", row.error
        assert row.attempt == 2
        assert row.metrics["resumed_from_step"] > 0
        assert row.metrics["resumed_from_step"] == killed_at_step
        assert ModelVersion.objects.filter(run=row).count() == 1
        assert ModelVersion.objects.count() == 1
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
