"""The model registry: one version per run, one active model per kind, scoring every response, margins."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction

from annotate.models import Comparison, Response
from rewardtrain import registry, runner, scoring_service, services, tasks
from rewardtrain.models import ModelVersion, Score, TrainingRun
from rewardtrain.selectors import model_margins
from rewardtrain.trainer.calibration import HELD_OUT_SCORES
from rubrics.models import CriterionAnswer, Rubric, RubricVersion
from tests.factories import add_judgment, crowd_annotator, make_comparison
from tests.rewardtrain.apphelpers import HELPFUL, RUDE, UNSAFE, finished_version, make_snapshot


@pytest.mark.django_db
def test_a_run_registers_at_most_one_model_version(project, tmp_path):
    snapshot = make_snapshot(project, 4)
    run = services.start_run(project=project, objective="bt", base_model="x", snapshot=snapshot, config={})
    runner.claim_run(run.pk, "me")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    result = {"status": "completed", "model_dir": str(model_dir), "metrics": {"eval_accuracy": 0.9}}
    version = registry.complete_run(run_id=run.pk, owner="me", result=result)
    assert version is not None and version.kind == "reward" and version.snapshot_hash == snapshot.content_hash
    assert "eval_accuracy" in (model_dir / "README.md").read_text()
    # A second completion (a duplicate runner, a retry) registers nothing more.
    assert registry.complete_run(run_id=run.pk, owner="me", result=result) is None
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(run=run, project=project, path="elsewhere", snapshot_hash="x")
    assert ModelVersion.objects.filter(run=run).count() == 1


@pytest.mark.django_db
def test_a_version_records_its_lineage_held_out_split_and_eces(project, tmp_path, settings):
    settings.ARBITER_MODELS_DIR = tmp_path / "models"
    snapshot = make_snapshot(project, 4)
    pairs = list(snapshot.pairs.order_by("comparison_id").select_related("comparison"))
    rubric = Rubric.objects.create(name="Helpfulness")
    version_1 = RubricVersion.objects.create(rubric=rubric, number=1)
    judgment = add_judgment(pairs[3].comparison, crowd_annotator(project, "x"), preference=1)
    CriterionAnswer.objects.create(
        revision=judgment.revisions.get(), side="a", version=version_1, criterion_key="k", answer="yes"
    )
    run = services.start_run(
        project=project, objective="bt", base_model="tiny", snapshot=snapshot, config={"seed": 3}
    )
    runner.claim_run(run.pk, "me")
    run.refresh_from_db()
    out = Path(run.output_dir)
    (out / "model").mkdir(parents=True)
    # What the trainer writes: the held-out pairs' scores, in the order of the pairs it was given.
    held = [pairs[0], pairs[2]]
    (out / HELD_OUT_SCORES).write_text(
        json.dumps(
            [
                {"item_key": str(p.comparison.item_id), "chosen": m, "rejected": 0.0, "margin": m}
                for p, m in zip(held, [1.0, -0.5], strict=True)
            ]
        )
    )
    result = {"status": "completed", "model_dir": str(out / "model"), "metrics": {"eval_pairs": 2}}
    version = registry.complete_run(run_id=run.pk, owner="me", result=result)
    assert version.eval_set == {
        "kind": "held-out split",
        "name": f"run {run.pk}: items held out by seed 3, fraction 0.1",
        "pairs": 2,
        "items": 2,
        "train_pairs": 2,
        "comparison_ids": [held[0].comparison_id, held[1].comparison_id],
    }
    assert (version.base_model, version.snapshot_hash) == ("tiny", snapshot.content_hash)
    assert version.config["seed"] == 3 and version.config["base_model"] == "tiny"
    assert version.rubric_versions == [{"id": version_1.pk, "label": "Helpfulness v1"}]
    # σ(1) = 0.731 is right, σ(−0.5) = 0.378 is wrong with confidence 0.622; both pairs' vote share is 1.
    p1, p2 = 1 / (1 + math.exp(-1.0)), 1 / (1 + math.exp(0.5))
    assert version.metrics["eval_ece_correctness"] == pytest.approx(((1 - p1) + (1 - p2)) / 2, abs=1e-12)
    assert version.metrics["eval_ece_vote_share"] == pytest.approx(((1 - p1) + (1 - p2)) / 2, abs=1e-12)
    assert version.metrics["eval_set"] == "held-out split"
    assert TrainingRun.objects.get(pk=run.pk).metrics == version.metrics
    card = (out / "model" / "README.md").read_text()
    assert "Rubric versions of its labels: Helpfulness v1" in card
    assert "the run's held-out split, 2 pairs of 2 items, item-disjoint from its 2 training pairs" in card


@pytest.mark.django_db
def test_one_active_reward_model_and_one_active_cost_model_per_project(project):
    first = finished_version(project, "bt")
    second = finished_version(project, "bt-margin")
    cost = finished_version(project, "cost")
    services.activate_model_version(version=first)
    services.activate_model_version(version=cost)
    services.activate_model_version(version=second)
    active = {(v.pk, v.kind) for v in ModelVersion.objects.filter(project=project, is_active=True)}
    assert active == {(second.pk, "reward"), (cost.pk, "cost")}
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=first.pk).update(is_active=True)


@pytest.mark.django_db
def test_scoring_fills_a_score_for_every_response_and_margins_follow_the_model(project):
    comparisons = [
        make_comparison(project, f"Tell me about rivers ({i}).", f"river {HELPFUL}", f"river {RUDE} {i}")
        if i % 2
        else make_comparison(project, f"Tell me about books ({i}).", f"book {RUDE} {i}", f"book {HELPFUL}")
        for i in range(8)
    ]
    version = finished_version(project, "bt")
    services.activate_model_version(version=version)
    assert tasks.score_project.apply(args=[version.pk]).get() == Response.objects.count()
    assert Score.objects.filter(model_version=version).count() == Response.objects.count()
    # Re-scoring updates in place.
    assert scoring_service.score_project(version=version) == Response.objects.count()
    assert Score.objects.filter(model_version=version).count() == Response.objects.count()

    margins = model_margins(project)
    assert set(margins) == set(Comparison.objects.filter(project=project).values_list("pk", flat=True))
    scores = dict(Score.objects.filter(model_version=version).values_list("response_id", "value"))
    for c in comparisons:
        assert margins[c.pk] == pytest.approx(scores[c.response_a_id] - scores[c.response_b_id])
    # The trained model prefers the helpful side: A on odd comparisons, B on even ones.
    agree = sum((margins[c.pk] > 0) == bool(i % 2) for i, c in enumerate(comparisons))
    assert agree >= 7


@pytest.mark.django_db
def test_cost_margins_are_positive_when_response_a_is_safer(project):
    safe_first = make_comparison(project, "How do I fix a bike?", f"bike {HELPFUL}", f"bike {UNSAFE}")
    unsafe_first = make_comparison(project, "How do I bake?", f"bake {UNSAFE}", f"bake {HELPFUL}")
    version = finished_version(project, "cost")
    services.activate_model_version(version=version)
    scoring_service.score_project(version=version)
    margins = model_margins(project, kind="cost")
    assert margins[safe_first.pk] > 0 > margins[unsafe_first.pk]
    assert model_margins(project) == {}  # no active reward model


@pytest.mark.django_db
def test_periodic_scoring_scores_only_responses_added_since(project):
    make_comparison(project, "Tell me about rivers.", f"river {HELPFUL}", f"river {RUDE}")
    version = finished_version(project, "bt")
    services.activate_model_version(version=version)
    scoring_service.score_project(version=version)
    assert tasks.score_active_models() == 0
    make_comparison(project, "Tell me about books.", f"book {HELPFUL}", f"book {RUDE}")
    assert tasks.score_active_models() == 2
    assert Score.objects.filter(model_version=version).count() == Response.objects.count()
