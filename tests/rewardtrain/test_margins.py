"""The margin page: human margins, the active reward model against them, and the triage list."""

from __future__ import annotations

import math
import re

import pytest
from django.core.cache import cache

from curation.models import DatasetSnapshot
from insights.dashboard import recompute_dashboard
from insights.models import Adjudication
from rewardtrain.margins import margin_figures
from rewardtrain.models import ModelVersion, Score, TrainingRun
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparison


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield
    cache.clear()


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def active_model(project, active=True, held_out=None):
    """A model version whose run held out the comparisons `held_out` (None: no held-out set recorded)."""
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="tiny")
    eval_set = (
        {}
        if held_out is None
        else {
            "kind": "held-out split",
            "name": "items held out by seed 0",
            "pairs": len(held_out),
            "train_pairs": 1,
            "comparison_ids": [c.pk for c in held_out],
        }
    )
    return ModelVersion.objects.create(
        run=run, project=project, path="/m", snapshot_hash="0" * 64, is_active=active, eval_set=eval_set
    )


@pytest.fixture
def fixture(project, researcher):
    people = [crowd_annotator(project, n) for n in ("p", "q", "r", "s")]
    built = {}
    # name: (preferences of the voters, r(A), r(B))
    spec = {
        "confident_model_against_unanimous_humans": ([-2, -1, -3], 0.0, 3.0),
        "humans_split": ([-1, 1], 0.0, 0.0),
        "majority_against_model_and_a_dissent": ([2, 1, -1], 1.0, 0.0),
        "model_agrees": ([3, 3, 2], 0.0, 2.0),
        "adjudicated_split": ([-1, -1, 2, 2], 0.0, 0.0),
        # A comparison the model was trained on (not in its held-out split): its figures never count it.
        "trained_on": ([3, 3, 3], 0.0, 9.0),
    }
    for name, (prefs, _, _) in spec.items():
        c = make_comparison(project, name, f"{name} A", f"{name} B")
        for person, pref in zip(people, prefs, strict=False):
            add_judgment(c, person, preference=pref)
        built[name] = c
    model = active_model(project, held_out=[c for name, c in built.items() if name != "trained_on"])
    for name, (_, ra, rb) in spec.items():
        Score.objects.create(model_version=model, response=built[name].response_a, value=ra)
        Score.objects.create(model_version=model, response=built[name].response_b, value=rb)
    Adjudication.objects.create(
        comparison=built["adjudicated_split"], axis="overall", choice="b", reason="r", decided_by=researcher
    )
    return built


@pytest.mark.django_db
def test_triage_ranks_a_hand_built_fixture(project, fixture):
    triage = margin_figures(project)["triage"]
    got = [(row["comparison_id"], row["reason"], round(row["score"], 9)) for row in triage]
    assert got == [
        (fixture["humans_split"].pk, "humans_split", 1.0),
        (fixture["confident_model_against_unanimous_humans"].pk, "model_vs_humans", round(sigmoid(3.0), 9)),
        (fixture["majority_against_model_and_a_dissent"].pk, "humans_split", round(1 - 1 / 3, 9)),
    ]
    first = triage[1]
    assert (first["votes_a"], first["votes_b"], first["model_pref"]) == (3, 0, 3.0)


@pytest.mark.django_db
def test_model_accuracy_by_strength_and_calibration(project, fixture):
    model = margin_figures(project)["model"]
    # Consensus sides: A, none, B, B, B (adjudicated). The model is right on `model_agrees` only among the
    # comparisons with a consensus; the adjudicated one has margin 0, which is not right.
    assert model["compared"] == 4
    assert model["accuracy"] == pytest.approx(1 / 4)
    buckets = {b["bucket"]: (b["n"], b["accuracy"]) for b in model["by_strength"]}
    # Human margins: 2/3 (A side: 2, 1, 3), 0.5 (B: 2, 1), 8/9 (B: 3, 3, 2), 2/3 (B adjudicated: 2, 2).
    assert buckets == {2: (3, 0.0), 3: (1, 1.0)}
    cal = model["calibration"]
    assert cal["n"] == 4
    predicted = [sigmoid(-3.0), sigmoid(-1.0), sigmoid(2.0), sigmoid(0.0)]
    observed = [1.0, 2 / 3, 1.0, 0.5]
    bins: dict[int, list[float]] = {}
    for p, o in zip(predicted, observed, strict=True):
        bins.setdefault(min(int(p * 10), 9), [0.0, 0.0])
        bins[min(int(p * 10), 9)][0] += p
        bins[min(int(p * 10), 9)][1] += o
    assert cal["ece"] == pytest.approx(sum(abs(p - o) for p, o in bins.values()) / 4, abs=1e-12)


@pytest.mark.django_db
def test_margin_page_lists_the_triage_with_actions(client, project, researcher, fixture):
    page = login(client, researcher).get(f"/p/{project.slug}/margins/").content.decode()
    ids = [int(m) for m in re.findall(r'name="ids" value="(\d+)"', page)]
    assert ids == [
        fixture["humans_split"].pk,
        fixture["confident_model_against_unanimous_humans"].pk,
        fixture["majority_against_model_and_a_dissent"].pk,
    ]
    for text in (
        "Human margin",
        "Reliability diagram",
        "Accuracy by human strength",
        "ECE",
        "Adjudicate the selected",
    ):
        assert text in page


@pytest.mark.django_db
def test_model_figures_count_the_held_out_split_only_and_the_page_says_so(
    client, project, researcher, fixture
):
    model = margin_figures(project)["model"]
    # Six comparisons are scored; the one the model was trained on is in no figure.
    assert model["scored"] == 5
    assert model["held_out_in_project"] == 5
    assert model["evaluated_on"]["kind"] == "held-out split"
    assert model["evaluated_on"]["pairs"] == 5
    assert model["calibration"]["n"] == model["compared"] == 4
    assert sum(b["n"] for b in model["by_strength"]) == 4
    assert sum(model["histogram"]["counts"]) == 4
    page = login(client, researcher).get(f"/p/{project.slug}/margins/").content.decode()
    assert "Measured on:" in page
    assert "held-out split of run" in page
    assert "5 held-out pairs, item-disjoint from its 1 training pairs" in page
    assert "No training comparison is counted." in page


@pytest.mark.django_db
def test_a_model_without_a_recorded_held_out_set_shows_no_figure(client, project, researcher):
    people = [crowd_annotator(project, n) for n in ("p", "q")]
    c = make_comparison(project, "p", "a", "b")
    for person in people:
        add_judgment(c, person, preference=3)
    model = active_model(project)
    Score.objects.create(model_version=model, response=c.response_a, value=0.0)
    Score.objects.create(model_version=model, response=c.response_b, value=1.0)
    figures = margin_figures(project)["model"]
    assert figures["evaluated_on"]["kind"] == "none"
    assert (figures["scored"], figures["compared"], figures["accuracy"]) == (0, 0, None)
    page = login(client, researcher).get(f"/p/{project.slug}/margins/").content.decode()
    assert "no held-out set is recorded" in page


@pytest.mark.django_db
def test_without_an_active_model_the_page_shows_human_margins_and_splits(client, project, researcher):
    c = make_comparison(project, "p", "a", "b")
    add_judgment(c, crowd_annotator(project, "x"), preference=-1)
    add_judgment(c, crowd_annotator(project, "y"), preference=2)
    active_model(project, active=False)
    figures = margin_figures(project)
    assert figures["model"] is None
    assert [t["reason"] for t in figures["triage"]] == ["humans_split"]
    page = login(client, researcher).get(f"/p/{project.slug}/margins/").content.decode()
    assert "No active reward model" in page


@pytest.mark.django_db
def test_annotators_and_outsiders_get_404(client, project, annotator, outsider):
    for user in (annotator, outsider):
        assert login(client, user).get(f"/p/{project.slug}/margins/").status_code == 404


@pytest.mark.django_db
def test_page_figures_are_cached_until_new_judgments_are_recomputed(client, project, researcher):
    c = make_comparison(project, "p", "a", "b")
    add_judgment(c, crowd_annotator(project, "x"), preference=-1)
    add_judgment(c, crowd_annotator(project, "y"), preference=2)
    login(client, researcher)
    assert "humans split" in client.get(f"/p/{project.slug}/margins/").content.decode()
    add_judgment(c, crowd_annotator(project, "z"), preference=-3)
    recompute_dashboard(project.pk)  # what follows a judgment: the dashboard's recompute moves the stamp
    figures = margin_figures(project)
    page = client.get(f"/p/{project.slug}/margins/").content.decode()
    assert [t["votes_a"] for t in figures["triage"]] == [2]
    assert "2 · 0 · 1" in page
