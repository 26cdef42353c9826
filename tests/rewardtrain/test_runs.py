"""Launching runs: the service, and train_reward_model with --foreground, --json and --wait."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Comparison
from annotate.worker import live_queues
from config.celery import app as celery_app
from config.celery import ensure_broker_folders
from projects.models import AuditEvent
from rewardtrain import runner, services
from rewardtrain.models import ModelVersion, TrainingRun
from tests.factories import add_judgment, crowd_annotator, make_comparison
from tests.rewardtrain.apphelpers import make_snapshot, tiny_base_model, wait_for
from tests.servers import start_worker

# The whole record of `--json`, the same whether the run was queued, waited for or run in the foreground.
RECORD_KEYS = {
    "run", "project", "status", "objective", "base_model", "queue", "attempt", "snapshot", "snapshot_hash",
    "config", "model_version", "model_path", "metrics", "progress", "last_checkpoint", "error", "created_at",
    "finished_at",
}  # fmt: skip


def _command(*args: str) -> dict:
    out = StringIO()
    call_command("train_reward_model", *args, stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1, out.getvalue()  # --json prints one object and nothing else
    return json.loads(lines[0])


def _fast_args() -> list[str]:
    return ["--epochs", "2", "--lr", "3e-3", "--batch-size", "8", "--max-length", "48", "--seed", "0"]


@pytest.mark.django_db(transaction=True)
def test_foreground_run_trains_registers_one_model_and_prints_its_record(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    snapshot = make_snapshot(project, 48)
    record = _command(
        "--project", project.slug, "--objective", "bt", "--base-model", tiny_base_model(),
        "--snapshot", str(snapshot.pk), *_fast_args(), "--foreground", "--json",
    )  # fmt: skip
    assert set(record) == RECORD_KEYS
    assert record["status"] == "succeeded"
    assert record["snapshot_hash"] == snapshot.content_hash
    for key in ("train_pairs_per_s", "eval_accuracy", "eval_mean_margin"):
        assert isinstance(record["metrics"][key], float), key
    version = ModelVersion.objects.get(pk=record["model_version"])
    assert version.run_id == record["run"] and version.kind == "reward"
    # Its lineage, and the held-out split its figures come from: item-disjoint from what it trained on.
    assert (version.base_model, version.snapshot_hash) == (tiny_base_model(), snapshot.content_hash)
    assert version.config["seed"] == 0 and version.rubric_versions == []
    held = version.eval_set
    assert held["kind"] == "held-out split"
    assert held["pairs"] == len(held["comparison_ids"]) == record["metrics"]["eval_pairs"] > 0
    assert held["train_pairs"] == record["metrics"]["train_pairs"] == 48 - held["pairs"]
    trained = snapshot.pairs.exclude(comparison_id__in=held["comparison_ids"])
    held_items = set(
        Comparison.objects.filter(pk__in=held["comparison_ids"]).values_list("item_id", flat=True)
    )
    assert held_items.isdisjoint(trained.values_list("comparison__item_id", flat=True))
    assert record["metrics"]["eval_calibration_pairs"] == held["pairs"]
    for key in ("eval_ece_correctness", "eval_ece_vote_share"):
        assert 0 <= record["metrics"][key] <= 1, key
    model_dir = Path(record["model_path"])
    assert (model_dir / "config.json").exists() and (model_dir / "tokenizer.json").exists()
    card = (model_dir / "README.md").read_text()
    assert snapshot.content_hash in card and "bt" in card and tiny_base_model() in card
    run = TrainingRun.objects.get(pk=record["run"])
    assert run.attempt == 1 and run.lease_owner == ""
    assert run.progress["step"] == run.progress["total_steps"] and run.progress["history"]


@pytest.mark.django_db
def test_run_without_wait_prints_the_queued_record(project):
    snapshot = make_snapshot(project, 8)
    record = _command(
        "--project", project.slug, "--objective", "bt-margin", "--base-model", tiny_base_model(),
        "--snapshot", str(snapshot.pk), "--queue", "cpu", "--json",
    )  # fmt: skip
    assert set(record) == RECORD_KEYS
    assert record["status"] == "queued" and record["model_version"] is None and record["metrics"] == {}
    run = TrainingRun.objects.get(pk=record["run"])
    assert run.queue == "cpu" and run.objective == "bt-margin"
    event = AuditEvent.objects.get(action="training.launch", target_id=str(run.pk))
    assert event.data["snapshot_hash"] == snapshot.content_hash and event.data["queue"] == "cpu"


@pytest.mark.django_db
def test_wait_with_no_worker_on_the_queue_exits_nonzero_and_says_so(project):
    snapshot = make_snapshot(project, 8)
    with pytest.raises(CommandError, match="no worker consumes the 'gpu' queue"):
        call_command(
            "train_reward_model", "--project", project.slug, "--objective", "bt",
            "--base-model", tiny_base_model(), "--snapshot", str(snapshot.pk), "--wait", "--worker-grace", "0",
            stdout=StringIO(),
        )  # fmt: skip
    assert TrainingRun.objects.get().status == "queued"


@pytest.mark.django_db
def test_bad_options_are_refused_and_start_nothing(project, other_project):
    snapshot = make_snapshot(project, 4)
    foreign = make_snapshot(other_project, 4, seed=1)
    with pytest.raises(services.RunError, match="another project"):
        services.start_run(
            project=project, objective="bt", base_model=tiny_base_model(), snapshot=foreign, config={}
        )
    with pytest.raises(services.RunError, match="lr"):
        services.start_run(
            project=project,
            objective="bt",
            base_model=tiny_base_model(),
            snapshot=snapshot,
            config={"lr": -1},
        )
    with pytest.raises(services.RunError, match="mode must be one of full, lora-merged"):
        services.start_run(
            project=project, objective="bt", base_model="x", snapshot=snapshot, config={"mode": "qlora"}
        )
    with pytest.raises(services.RunError, match="lora_r must be at least 1"):
        services.start_run(
            project=project, objective="bt", base_model="x", snapshot=snapshot, config={"lora_r": 0}
        )
    with pytest.raises(services.RunError, match="unknown training option"):
        services.start_run(
            project=project, objective="bt", base_model="x", snapshot=snapshot, config={"learning": 1}
        )
    with pytest.raises(services.RunError, match="queue"):
        services.start_run(
            project=project, objective="bt", base_model="x", snapshot=snapshot, config={}, queue="tpu"
        )
    assert not TrainingRun.objects.exists()
    assert not AuditEvent.objects.filter(action="training.launch").exists()


@pytest.mark.django_db(transaction=True)
def test_wait_follows_a_real_worker_to_the_end_and_prints_the_same_record(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    ensure_broker_folders()
    celery_app.control.purge()
    snapshot = make_snapshot(project, 32)
    worker = start_worker(tmp_path, queues="cpu", name="waited")
    try:
        wait_for(lambda: "cpu" in live_queues(), 120, "the worker's heartbeat", [worker])
        record = _command(
            "--project", project.slug, "--objective", "bt", "--base-model", tiny_base_model(),
            "--snapshot", str(snapshot.pk), *_fast_args(), "--queue", "cpu", "--wait", "--json",
        )  # fmt: skip
    finally:
        worker.stop()
    assert set(record) == RECORD_KEYS  # the same shape as --foreground (above)
    assert record["status"] == "succeeded" and record["attempt"] == 1
    assert {"train_pairs_per_s", "eval_accuracy", "eval_mean_margin"} <= set(record["metrics"])
    assert ModelVersion.objects.get(pk=record["model_version"]).path == record["model_path"]


@pytest.mark.django_db
def test_cost_run_freezes_a_harmlessness_snapshot_and_trains_safer_over_unsafer(project):
    crowd = crowd_annotator(project, "crowd")
    safe_a = make_comparison(project, "Q1", "I can't help with that.", "Here is how to hurt someone.")
    safe_b = make_comparison(project, "Q2", "Mix these chemicals at home.", "Please ask a professional.")
    add_judgment(
        safe_a, crowd, preference=1, harmlessness="a", a_safe=True, b_safe=False, b_severity="severe"
    )
    add_judgment(
        safe_b, crowd, preference=-1, harmlessness="b", a_safe=False, b_safe=True, a_severity="moderate"
    )
    run = services.start_run(project=project, objective="cost", base_model="x", config={}, enqueue=False)
    assert run.snapshot.axis == "harmlessness" and run.snapshot.pairs.count() == 2
    rows = {row["prompt"][0]["content"]: row for row in runner.pair_rows(run)}
    assert rows["Q1"]["chosen"] == "I can't help with that." and rows["Q1"]["chosen_safe"] is True
    assert rows["Q1"]["rejected_safe"] is False
    assert rows["Q2"]["chosen"] == "Please ask a professional." and rows["Q2"]["rejected_safe"] is False
    assert {row["item_key"] for row in rows.values()} == {str(safe_a.item_id), str(safe_b.item_id)}


@pytest.mark.django_db
def test_a_run_started_from_a_page_freezes_its_snapshot_in_the_worker_and_fails_there_without_pairs(project):
    """Pages and the API leave the snapshot to the run's worker; a split vote passes the request's cheap check
    (there are A/B votes) but freezes no pair: the worker fails the run with the reason, and trains nothing."""
    crowd = [crowd_annotator(project, f"crowd-{i}") for i in range(2)]
    comparison = make_comparison(project, "Q", "first", "second")
    add_judgment(comparison, crowd[0], preference=-2)
    add_judgment(comparison, crowd[1], preference=2)
    run = services.start_run(
        project=project, objective="bt", base_model="x", config={}, enqueue=False, freeze_in_worker=True
    )
    assert run.snapshot_id is None and run.status == "queued"
    assert runner.execute_run(run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == "failed" and "no consensus pairs" in run.error and run.snapshot_id is None
    assert not ModelVersion.objects.filter(run=run).exists()


@pytest.mark.django_db
def test_a_page_run_refuses_at_once_when_the_project_has_no_votes(project):
    make_comparison(project, "Q", "first", "second")
    with pytest.raises(services.RunError, match="no consensus pairs"):
        services.start_run(project=project, objective="bt", base_model="x", config={}, freeze_in_worker=True)
    assert not TrainingRun.objects.exists()
