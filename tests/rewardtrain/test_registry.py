"""The model registry: one version per run, one active model per kind, scoring every response, margins."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from annotate.models import Comparison, Response
from rewardtrain import registry, runner, scoring_service, services, tasks
from rewardtrain.models import ModelVersion, Score
from rewardtrain.selectors import model_margins
from tests.factories import make_comparison
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
