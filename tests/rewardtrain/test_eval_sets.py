"""Evaluation sets (frozen, per project, any labelled format plus a subset per row) and model comparisons: two
tiny models scored on one set in one job, with per-subset accuracy checked against a hand count."""

from __future__ import annotations

import atexit
import functools
import json
import random
import shutil
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from projects.api_auth import create_token
from projects.models import AuditEvent
from rewardtrain import comparison
from rewardtrain.eval_sets import SetError, create_set, start_comparison
from rewardtrain.models import EvaluationSet, LineageError, ModelComparison, ModelVersion, TrainingRun
from rewardtrain.trainer.training import Pair, TrainConfig, train
from tests.rewardtrain.apphelpers import FAST, finished_version, tiny_base_model, toy_texts


def rewardbench_rows() -> list[dict]:
    """RewardBench-style rows: `chat` has 4 pairs labelled helpful-over-rude; `chat-hard` 2 such pairs and 2
    labelled the other way round (so a model that learnt helpful > rude is right on exactly 4 + 2 of 8)."""
    rng = random.Random(11)
    rows = []
    for i in range(8):
        prompt, good, bad = toy_texts(500 + i, rng)
        subset = "chat" if i < 4 else "chat-hard"
        reversed_label = i >= 6
        chosen, rejected = (bad, good) if reversed_label else (good, bad)
        rows.append({"id": i, "prompt": prompt, "chosen": chosen, "rejected": rejected, "subset": subset})
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@functools.cache
def reversed_model_dir() -> str:
    """A second tiny model, trained (once per session) on toy pairs labelled the wrong way: rude over helpful."""
    rng = random.Random(3)
    pairs = []
    for i in range(48):
        prompt, good, bad = toy_texts(i, rng)
        pairs.append(Pair(str(i), [{"role": "user", "content": prompt}], bad, good, margin=1.0))
    out = Path(tempfile.mkdtemp(prefix="arbiter-reversed-bt-"))
    atexit.register(shutil.rmtree, out, True)
    config = TrainConfig(base_model=tiny_base_model(), objective="bt", **{**FAST, "epochs": 3})
    return train(pairs, config, output_dir=out).model_dir


def second_version(trained: ModelVersion) -> ModelVersion:
    """A second model version of the project (reversed_model_dir), from a run of its own."""
    run = TrainingRun.objects.create(
        project=trained.project,
        snapshot=trained.run.snapshot,
        base_model=tiny_base_model(),
        status=TrainingRun.Status.SUCCEEDED,
    )
    return ModelVersion.objects.create(
        run=run, project=trained.project, kind=trained.kind, path=reversed_model_dir(), snapshot_hash="w" * 64
    )


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {create_token(user=user, name='t')[1]}"}


def add_set(project, tmp_path, name="bench", fmt="rewardbench", rows=None) -> EvaluationSet:
    path = write(tmp_path / f"{name}.jsonl", rows or rewardbench_rows())
    return create_set(project=project, name=name, fmt=fmt, source=path, filename=path.name)


@pytest.mark.django_db
def test_a_set_is_checked_copied_and_counted_by_subset(project, tmp_path, settings):
    eval_set = add_set(project, tmp_path)
    assert eval_set.rows == 8 and eval_set.subsets == {"chat": 4, "chat-hard": 4}
    stored = Path(eval_set.path)
    assert stored.is_file() and stored.parent == Path(settings.DATA_DIR) / "evaluation-sets"
    assert stored.name == f"{eval_set.sha256}.jsonl"
    # trl rows with a `category` on some rows only; the rest have no subset.
    rows = [{k: v for k, v in r.items() if k != "subset"} for r in rewardbench_rows()[:3]]
    rows[0]["category"] = "safety"
    trl = add_set(project, tmp_path, name="mixed", fmt="trl", rows=rows)
    assert trl.subsets == {"": 2, "safety": 1} and trl.strength == ""
    with_margins = add_set(
        project, tmp_path, name="margins", fmt="trl", rows=[{**r, "margin": 0.5} for r in rows]
    )
    assert with_margins.strength == "margin"


@pytest.mark.django_db
def test_a_bad_row_is_named_by_line_and_field_and_nothing_is_stored(project, tmp_path, settings):
    settings.DATA_DIR = tmp_path / "data"
    rows = rewardbench_rows()
    del rows[2]["subset"]
    with pytest.raises(SetError, match=r"bad\.jsonl:3: field 'subset' missing"):
        add_set(project, tmp_path, name="bad", rows=rows)
    rows = rewardbench_rows()
    rows[4]["chosen"] = 7
    with pytest.raises(SetError, match=r"bad\.jsonl:5: field 'chosen'"):
        add_set(project, tmp_path, name="bad", rows=rows)
    rows = rewardbench_rows()
    rows[1]["subset"] = ""
    with pytest.raises(SetError, match=r"bad\.jsonl:2: field 'subset' must be a non-empty string"):
        add_set(project, tmp_path, name="bad", rows=rows)
    assert not EvaluationSet.objects.exists()
    assert not (tmp_path / "data").exists()


@pytest.mark.django_db
def test_a_set_is_frozen_in_python_and_in_the_database(project, tmp_path):
    eval_set = add_set(project, tmp_path)
    with pytest.raises(LineageError):
        eval_set.save()
    with pytest.raises(LineageError):
        eval_set.delete()
    with pytest.raises(IntegrityError, match="evaluation set is frozen"), transaction.atomic():
        EvaluationSet.objects.filter(pk=eval_set.pk).update(name="renamed")
    with pytest.raises(IntegrityError, match="evaluation set is frozen"), transaction.atomic():
        EvaluationSet.objects.filter(pk=eval_set.pk).delete()
    with pytest.raises(SetError, match="already has an evaluation set named 'bench'"):
        add_set(project, tmp_path)
    with transaction.atomic(), connection.cursor() as cursor:  # a purge may delete it
        cursor.execute("SELECT set_config('arbiter.purge_lineage', 'on', true)")
        cursor.execute("DELETE FROM rewardtrain_evaluationset WHERE id = %s", [eval_set.pk])
    assert not EvaluationSet.objects.exists()


@pytest.mark.django_db
def test_two_models_on_a_set_give_per_subset_accuracy_equal_to_a_hand_count(project, tmp_path):
    eval_set = add_set(project, tmp_path)
    trained = finished_version(project, "bt")
    rev = second_version(trained)
    job = start_comparison(eval_set=eval_set, model_ids=[trained.pk, rev.pk], send=False)
    assert comparison.run_job(job.pk) == "succeeded"
    job.refresh_from_db()
    summary = job.summary
    assert summary["pairs"] == 8 and summary["subsets"] == ["chat", "chat-hard"]
    by_id = {m["id"]: m for m in summary["models"]}
    # The trained model prefers helpful to rude: right on the 4 chat pairs and on 2 of the 4 chat-hard ones.
    assert {s: (v["correct"], v["n"]) for s, v in by_id[trained.pk]["subsets"].items()} == {
        "chat": (4, 4),
        "chat-hard": (2, 4),
    }
    assert by_id[trained.pk]["accuracy"] == 6 / 8
    # The reversed model prefers rude to helpful: right only on the 2 chat-hard pairs labelled that way.
    assert {s: (v["correct"], v["n"]) for s, v in by_id[rev.pk]["subsets"].items()} == {
        "chat": (0, 4),
        "chat-hard": (2, 4),
    }
    # Both counted by hand from the per-pair file too.
    lines = [json.loads(line) for line in Path(job.results_path).read_text().splitlines()]
    assert [line["line"] for line in lines] == list(range(1, 9))
    for model in (trained, rev):
        for subset in ("chat", "chat-hard"):
            mine = [line for line in lines if line["subset"] == subset]
            hand = sum(1 for line in mine if line["margins"][str(model.pk)] > 0)
            got = by_id[model.pk]["subsets"][subset]
            assert (got["correct"], got["n"]) == (hand, len(mine))
            lo, hi = got["ci95"]
            assert lo <= got["accuracy"] <= hi
    # The two models take opposite sides on every pair: all 8 are listed, as disagreeing with each other.
    assert summary["agreement"] == [
        {
            "a": trained.pk,
            "b": rev.pk,
            "n": 8,
            "correct": 0,
            "accuracy": 0.0,
            "ci95": summary["agreement"][0]["ci95"],
        }
    ]
    assert sorted(d["line"] for d in summary["disagreements"]) == list(range(1, 9))
    assert {d["reason"] for d in summary["disagreements"]} == {"models disagree"}
    ece = by_id[trained.pk]["calibration"]["ece_correctness"]
    assert 0 <= ece <= 1 and sum(by_id[trained.pk]["histogram"]["counts"]) == 8


@pytest.mark.django_db
def test_command_adds_a_set_and_compares_models_as_json(project, tmp_path):
    path = write(tmp_path / "bench.jsonl", rewardbench_rows())
    out = StringIO()
    call_command(
        "eval_set_add", "--project", "hh", "--name", "bench", "--format", "rewardbench", "--file", str(path),
        stdout=out,
    )  # fmt: skip
    assert "8 pairs (chat 4, chat-hard 4)" in out.getvalue()
    trained = finished_version(project, "bt")
    out = StringIO()
    call_command("compare_models", "--set", "bench", "--models", str(trained.pk), "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["status"] == "succeeded" and report["eval_set"]["subsets"] == {"chat": 4, "chat-hard": 4}
    model = report["summary"]["models"][0]
    assert model["subsets"]["chat-hard"]["correct"] == 2
    assert ModelComparison.objects.get(pk=report["id"]).status == "succeeded"
    with pytest.raises(CommandError, match="no evaluation set named 'nope'"):
        call_command("compare_models", "--set", "nope", "--models", str(trained.pk))


@pytest.mark.django_db
def test_pages_and_api_show_the_comparison_to_researchers_only(
    project, researcher, annotator, outsider, client, tmp_path, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from tests.conftest import login

    login(client, researcher)
    sets_url = reverse("rewardtrain:eval_set_list", args=[project.slug])
    rows = rewardbench_rows()
    rows[3]["rejected"] = rows[3]["chosen"]
    upload = SimpleUploadedFile("bench.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    response = client.post(sets_url, {"name": "bench", "format": "rewardbench", "file": upload})
    assert response.status_code == 400 and b"bench.jsonl:4: field" in response.content
    assert not EvaluationSet.objects.exists()
    upload = SimpleUploadedFile(
        "bench.jsonl", "".join(json.dumps(r) + "\n" for r in rewardbench_rows()).encode()
    )
    response = client.post(sets_url, {"name": "bench", "format": "rewardbench", "file": upload})
    assert response.status_code == 302
    eval_set = EvaluationSet.objects.get()
    added = AuditEvent.objects.get(action="evaluation_set.add")
    assert (added.actor, added.target_id, added.data["rows"]) == (researcher, str(eval_set.pk), 8)
    trained = finished_version(project, "bt")
    rev = second_version(trained)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("rewardtrain:eval_compare", args=[project.slug]),
            {"eval_set": eval_set.pk, "models": [trained.pk, rev.pk]},
        )
    assert response.status_code == 302 and len(callbacks) == 1  # the job is sent once the request commits
    job = ModelComparison.objects.get()
    assert job.model_ids == [trained.pk, rev.pk]
    page_url = reverse("rewardtrain:eval_comparison", args=[project.slug, job.pk])
    assert b"Queued" in client.get(page_url).content
    comparison.run_job(job.pk)  # what the worker runs
    page = client.get(page_url).content.decode()
    assert 'data-subset="chat-hard"' in page and "2/4 = 0.500" in page and "ECE (correctness)" in page
    assert (
        page.count('role="img"') >= 5
    )  # accuracy intervals, and a histogram and a reliability diagram per model
    api_url = f"/api/eval-comparisons/{job.pk}"
    api = client.get(api_url, headers=bearer(researcher)).json()
    assert api["status"] == "succeeded" and api["models"] == [trained.pk, rev.pk]
    chat_hard = api["summary"]["models"][0]["subsets"]["chat-hard"]
    assert (chat_hard["correct"], chat_hard["n"]) == (2, 4)
    assert all("comparison_id" in d for d in api["summary"]["disagreements"])
    for user in (annotator, outsider):
        login(client, user)
        assert client.get(page_url).status_code == 404
        assert client.get(api_url, headers=bearer(user)).status_code == 404
        assert client.get(sets_url).status_code == 404


@pytest.mark.django_db
def test_a_raw_set_carries_vote_shares_so_accuracy_is_split_by_human_strength(project, tmp_path):
    """Votes per pair (with a subset on the pair's rows): the label is the majority, the strength its vote share."""
    rng = random.Random(5)
    rows = []
    for i, helpful_votes in enumerate((3, 3, 2, 2)):  # shares 1, 1, 2/3, 2/3 for the helpful side
        prompt, good, bad = toy_texts(900 + i, rng)
        for v in range(3):
            choice = "a" if v < helpful_votes else "b"
            row = {
                "prompt": prompt,
                "response_a": good,
                "response_b": bad,
                "annotator": f"x{v}",
                "choice": choice,
            }
            rows.append({**row, "subset": "easy" if i < 2 else "split"})
    eval_set = add_set(project, tmp_path, name="votes", fmt="raw", rows=rows)
    assert (eval_set.rows, eval_set.subsets, eval_set.strength) == (4, {"easy": 2, "split": 2}, "vote share")
    trained = finished_version(project, "bt")
    job = start_comparison(eval_set=eval_set, model_ids=[trained.pk], send=False)
    assert comparison.run_job(job.pk) == "succeeded"
    job.refresh_from_db()
    model = job.summary["models"][0]
    assert [(b["bucket"], b["correct"], b["n"]) for b in model["by_strength"]] == [
        ("0.67–0.83", 2, 2),
        ("0.83–1.00", 2, 2),
    ]
    assert 0 <= model["calibration"]["ece_vote_share"] <= 1
    assert job.summary["agreement"] == [] and job.summary["disagreements"] == []


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_comparison_from_the_cpu_queue(project, tmp_path):
    from config.celery import ensure_broker_folders
    from tests.rewardtrain.apphelpers import wait_for
    from tests.servers import start_worker

    eval_set = add_set(project, tmp_path)
    trained = finished_version(project, "bt")
    rev = second_version(trained)
    ensure_broker_folders()
    worker = start_worker(
        tmp_path, queues="cpu", name="compare", extra_env={"ARBITER_EXPORTS_DIR": str(tmp_path)}
    )
    try:
        job = start_comparison(eval_set=eval_set, model_ids=[trained.pk, rev.pk])  # sent on commit
        done = wait_for(
            lambda: ModelComparison.objects.filter(pk=job.pk, status__in=("succeeded", "failed")).first(),
            120,
            "the comparison job",
            [worker],
        )
        assert done.status == "succeeded", done.error + worker.output()
        assert Path(done.results_path).parent == tmp_path / "comparisons"
        assert [m["correct"] for m in done.summary["models"]] == [6, 2]
    finally:
        worker.stop()
