"""Every workbench endpoint: outsiders get 404, annotators reach only their own assignments."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.assignment import claim_next
from annotate.models import Assignment, Judgment
from projects.models import Membership, Project
from tests.annotate.workbench_support import SAFE_ANSWERS
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
        ("post", reverse("api:labelling_submit", args=[project.slug, pk])),
    ]


def project_urls(project):
    return [
        ("get", reverse("workbench", args=[project.slug])),
        ("get", reverse("workbench_status", args=[project.slug])),
        ("get", reverse("workbench_guidelines", args=[project.slug])),
        ("get", reverse("workbench_history", args=[project.slug])),
        ("post", reverse("api:labelling_claim", args=[project.slug])),
        ("get", reverse("workbench_controls", args=[project.slug])),
    ]


def _send(client, method: str, url: str, body: dict | None = None):
    """The JSON API takes JSON bodies (a form body is refused as malformed, 400, before anything is looked up)."""
    if url.startswith("/api/"):
        return getattr(client, method)(url, body or {}, content_type="application/json")
    return getattr(client, method)(url, body or {})


def test_outsider_gets_404_everywhere(client, project, outsider, mine):
    client.force_login(outsider)
    for method, url in project_urls(project) + assignment_urls(project, mine.pk):
        assert _send(client, method, url).status_code == 404, url


def test_annotator_cannot_reach_another_annotators_assignment(client, project, annotator2, mine):
    client.force_login(annotator2)
    for method, url in assignment_urls(project, mine.pk):
        assert _send(client, method, url, {"submission_id": "x"}).status_code == 404, url


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
    url = reverse("api:labelling_submit", args=[project.slug, mine.pk])
    body = {"answers": {"preference": 0}, "submission_id": "intruder"}
    assert client.post(url, body, content_type="application/json").status_code == 404
    assert not mine.comparison.judgments.exists()


# The JSON pair checks a member's access in the statement that locks their annotator row (claim) or their
# assignment (submit); whatever that statement does not find goes through the general checks. Each case where
# the two could differ:


def _api_submit(client, project, pk, submission_id="s"):
    body = {"answers": SAFE_ANSWERS, "submission_id": submission_id}
    return client.post(
        reverse("api:labelling_submit", args=[project.slug, pk]), body, content_type="application/json"
    )


def test_membership_ended_after_claiming_is_404_on_claim_and_submit(client, project, annotator, mine):
    Membership.objects.filter(user=annotator, project=project).update(is_active=False)
    client.force_login(annotator)
    assert client.post(reverse("api:labelling_claim", args=[project.slug])).status_code == 404
    assert _api_submit(client, project, mine.pk).status_code == 404
    assert not Judgment.objects.exists()


def test_deleted_project_is_404_on_claim_and_submit(client, project, annotator, mine):
    Project.objects.filter(pk=project.pk).update(deleted_at=timezone.now())
    client.force_login(annotator)
    assert client.post(reverse("api:labelling_claim", args=[project.slug])).status_code == 404
    assert _api_submit(client, project, mine.pk).status_code == 404
    assert not Judgment.objects.exists()


def test_own_assignment_under_another_projects_slug_is_404(client, project, other_project, annotator, mine):
    Membership.objects.create(user=annotator, project=other_project, role="annotator")
    client.force_login(annotator)
    assert _api_submit(client, other_project, mine.pk).status_code == 404
    assert _api_submit(client, project, mine.pk).status_code == 200


def test_admin_without_membership_claims_and_submits_through_the_general_path(client, project, admin_user):
    make_comparisons(project, 2)
    client.force_login(admin_user)
    for _ in range(2):  # the first claim makes their annotator row; the second finds it
        claimed = client.post(reverse("api:labelling_claim", args=[project.slug])).json()
        assert claimed["assignment"] is not None
        response = _api_submit(
            client, project, claimed["assignment"], submission_id=f"admin-{claimed['assignment']}"
        )
        assert response.status_code == 200
    assert Judgment.objects.filter(annotator__user=admin_user).count() == 2


def test_paused_project_gives_a_member_no_claim_with_the_reason(client, project, annotator, mine):
    Assignment.objects.filter(pk=mine.pk).update(status=Assignment.Status.SKIPPED)
    Project.objects.filter(pk=project.pk).update(paused=True)
    client.force_login(annotator)
    claimed = client.post(reverse("api:labelling_claim", args=[project.slug])).json()
    assert (claimed["assignment"], claimed["reason"]) == (None, "Labelling on this project is paused.")


def test_outsider_without_a_submission_id_is_404_not_400(client, project, outsider, annotator2, mine):
    body = {"answers": SAFE_ANSWERS}
    url = reverse("api:labelling_submit", args=[project.slug, mine.pk])
    for user in (outsider, annotator2):  # not on the project; on it, but not their assignment
        client.force_login(user)
        assert client.post(url, body, content_type="application/json").status_code == 404
    client.force_login(mine.annotator.user)
    assert client.post(url, body, content_type="application/json").status_code == 400
