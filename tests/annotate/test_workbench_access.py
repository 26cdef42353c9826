"""Every workbench endpoint: outsiders get 404, annotators reach only their own assignments."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.assignment import claim_next
from annotate.models import Membership
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture
def mine(project, annotator):
    make_comparisons(project, 2)
    return claim_next(project=project, user=annotator)


def assignment_urls(project, pk):
    return [
        ("post", reverse("workbench_submit", args=[project.slug, pk])),
        ("post", reverse("workbench_draft", args=[project.slug, pk])),
        ("post", reverse("workbench_skip", args=[project.slug, pk])),
        ("post", reverse("api_submit", args=[project.slug, pk])),
    ]


def project_urls(project):
    return [
        ("get", reverse("workbench", args=[project.slug])),
        ("get", reverse("workbench_status", args=[project.slug])),
        ("get", reverse("workbench_guidelines", args=[project.slug])),
        ("get", reverse("workbench_history", args=[project.slug])),
        ("post", reverse("api_claim", args=[project.slug])),
        ("get", reverse("workbench_controls", args=[project.slug])),
    ]


def test_outsider_gets_404_everywhere(client, project, outsider, mine):
    client.force_login(outsider)
    for method, url in project_urls(project) + assignment_urls(project, mine.pk):
        assert getattr(client, method)(url).status_code == 404, url


def test_annotator_cannot_reach_another_annotators_assignment(client, project, annotator2, mine):
    client.force_login(annotator2)
    for method, url in assignment_urls(project, mine.pk):
        assert getattr(client, method)(url, {"submission_id": "x"}).status_code == 404, url


def test_annotator_cannot_use_the_researcher_controls(client, project, annotator):
    client.force_login(annotator)
    assert client.get(reverse("workbench_controls", args=[project.slug])).status_code == 404


def test_assignment_of_another_project_is_404_under_this_one(client, project, other_project, annotator):
    make_comparisons(other_project, 1)
    Membership.objects.create(user=annotator, project=other_project, role="annotator")
    theirs = claim_next(project=other_project, user=annotator)
    client.force_login(annotator)
    url = reverse("workbench_draft", args=[project.slug, theirs.pk])
    assert client.post(url, "{}", content_type="application/json").status_code == 404


def test_anonymous_is_sent_to_login(client, project):
    resp = client.get(reverse("workbench", args=[project.slug]))
    assert resp.status_code == 302 and reverse("login") in resp["Location"]


def test_valid_submission_to_another_annotators_assignment_is_404_and_stores_nothing(
    client, project, annotator2, mine
):
    client.force_login(annotator2)
    url = reverse("api_submit", args=[project.slug, mine.pk])
    body = {"answers": {"preference": 0}, "submission_id": "intruder"}
    assert client.post(url, body, content_type="application/json").status_code == 404
    assert not mine.comparison.judgments.exists()
