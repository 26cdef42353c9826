"""The API's agreement figures are the dashboard's: one computation (`project_figures`), the same numbers."""

from __future__ import annotations

import random

import pytest
from django.core.cache import cache
from django.test import Client

from insights.agreement import project_figures
from insights.dashboard import recompute_dashboard
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


def agreement(user, slug):
    key = create_token(user=user, name="figures")[1]
    response = Client().get(f"/api/projects/{slug}/agreement", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    return response.json()


def test_the_api_and_the_dashboard_give_the_same_agreement_figures(voted, researcher):
    direct = project_figures(voted)
    computed_now = agreement(researcher, voted.slug)  # no dashboard yet: computed in the request
    assert computed_now["computed_at"] is None
    assert computed_now["questions"] == direct["questions"]
    assert computed_now["questions"]["overall"]["alpha_nominal"] is not None

    dashboard = recompute_dashboard(voted.pk)
    from_dashboard = agreement(researcher, voted.slug)
    assert from_dashboard["computed_at"] == dashboard["computed_at"]
    assert from_dashboard["questions"] == dashboard["agreement"]["questions"] == direct["questions"]
    assert from_dashboard["source_vs_crowd"] == direct["source_vs_crowd"]
    assert (from_dashboard["judgments"], from_dashboard["comparisons"]) == (90, 30)
