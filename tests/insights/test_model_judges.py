"""A model judge among humans: left out of every human figure, and set against the humans on its own."""

from __future__ import annotations

import random

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from sklearn.metrics import cohen_kappa_score

from annotate.models import Judgment
from insights.agreement import project_figures
from insights.dashboard import recompute_dashboard
from projects.models import Annotator
from tests.factories import add_judgment, make_comparisons

pytestmark = pytest.mark.django_db

HUMANS = ("amy", "ben", "cat")
PREFS = {"a": -2, "tie": 0, "b": 2}


def figures(project):
    return project_figures(project, n_resamples=50, seed=1)


def dashboard_page(project, user) -> str:
    cache.clear()
    recompute_dashboard(project.pk)
    client = Client()
    client.force_login(user)
    return client.get(reverse("dashboard", args=[project.slug]), HTTP_HX_REQUEST="true").content.decode()


def test_human_figures_ignore_the_model_judge_and_human_model_kappa_matches_sklearn(project, admin_user):
    rnd = random.Random(3)
    comparisons = make_comparisons(project, 24)
    humans = [Annotator.objects.create(project=project, name=n) for n in HUMANS]
    judge = Annotator.objects.create(project=project, name="judge-7b", kind=Annotator.Kind.MODEL)
    answers: dict[str, list[str]] = {name: [] for name in (*HUMANS, "judge-7b")}
    for c in comparisons:
        truth = rnd.choice("ab")
        for who in (*humans, judge):
            choice = truth if rnd.random() < 0.7 else rnd.choice(("a", "tie", "b"))
            answers[who.name].append(choice)
            add_judgment(c, who, preference=PREFS[choice])
    with_judge = figures(project)
    page = dashboard_page(project, admin_user)
    assert "Model judges vs humans" in page and "judge-7b" in page and "By queue order" not in page

    Judgment.objects.filter(annotator=judge).delete()
    humans_only = figures(project)
    for key in ("judgments", "annotators", "comparisons", "questions", "pairs", "per_annotator"):
        assert with_judge[key] == humans_only[key], key
    assert humans_only["model_vs_human"] == []

    (row,) = with_judge["model_vs_human"]
    judged = answers["judge-7b"]
    # The human majority: the side more humans chose (ties not counted), where there is one.
    majority = []
    for i in range(len(comparisons)):
        votes = [answers[h][i] for h in HUMANS]
        a, b = votes.count("a"), votes.count("b")
        majority.append("a" if a > b else "b" if b > a else None)
    kept = [i for i, m in enumerate(majority) if m is not None]
    expected = cohen_kappa_score([judged[i] for i in kept], [majority[i] for i in kept], labels=["a", "tie", "b"])
    assert row["judge"] == "judge-7b" and row["judgments"] == 24 and row["majority_n"] == len(kept)
    assert row["majority_kappa"] == pytest.approx(expected, abs=1e-12)
    assert row["majority_agreement"] == pytest.approx(sum(judged[i] == majority[i] for i in kept) / len(kept))
    assert [h["annotator"] for h in row["humans"]] == list(HUMANS)
    for h in row["humans"]:
        assert h["n"] == 24
        assert h["cohen_kappa"] == pytest.approx(
            cohen_kappa_score(judged, answers[h["annotator"]], labels=["a", "tie", "b"]), abs=1e-12
        )
