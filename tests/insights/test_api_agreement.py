"""The API's agreement figures are the dashboard's cached ones: one computation (`project_figures`), the same
numbers; the request never computes them itself (a 202 schedules the background recompute)."""

from __future__ import annotations

import random

import pytest
from django.core.cache import cache
from django.test import Client

from insights.agreement import project_figures
from insights.dashboard import recompute_dashboard, scheduled_key
from projects.api_auth import create_token
from tests.factories import add_judgment, crowd_annotator, make_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def voted(project):
    rng = random.Random(7)
    raters = [crowd_annotator(project, f"r{i}") for i in range(3)]
    for comparison in make_comparisons(project, 30):
        for rater in raters:
            add_judgment(comparison, rater, preference=rng.choice([-3, -1, 0, 1, 2]), helpfulness=rng.choice("ab"))
    return project


def agreement(user, slug, status=200):
    key = create_token(user=user, name="figures")[1]
    response = Client().get(f"/api/projects/{slug}/agreement", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == status
    return response.json()


def test_the_api_and_the_dashboard_give_the_same_agreement_figures(voted, researcher):
    direct = project_figures(voted)
    pending = agreement(researcher, voted.slug, status=202)  # no dashboard yet: scheduled, not computed here
    assert pending["status"] == "computing" and pending["project"] == voted.slug
    assert cache.get(scheduled_key(voted.pk)) is not None  # the background recompute is on its way

    dashboard = recompute_dashboard(voted.pk)
    from_dashboard = agreement(researcher, voted.slug)
    assert from_dashboard["computed_at"] == dashboard["computed_at"]
    assert from_dashboard["questions"] == dashboard["agreement"]["questions"] == direct["questions"]
    assert from_dashboard["source_vs_crowd"] == direct["source_vs_crowd"]
    assert from_dashboard["pairs"] == direct["pairs"]
    assert (from_dashboard["judgments"], from_dashboard["comparisons"]) == (90, 30)
    # Every question the dashboard shows, safety and the harm categories included, under the same names.
    assert list(from_dashboard["questions"]) == [name for name, _ in dashboard["question_rows"]["main"]] + [
        name for name, _ in dashboard["question_rows"]["harm"]
    ]
    assert {"overall", "preference", "safety"} <= set(from_dashboard["questions"])
    assert any(name.startswith("harm:") for name in from_dashboard["questions"])
