"""The labelling API with a token: claim, draft, submit, skip in JSON, under the workbench's rules (#21)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from annotate.models import Assignment, Draft, Judgment
from projects.api_auth import create_token
from tests.annotate.workbench_support import SAFE_ANSWERS
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    """A script's client: a token, no session, and Django's CSRF checks on (a token needs none)."""
    token = create_token(user=user, name="script")[1]
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {token}"})


def _post(client: Client, url: str, body: dict | None = None):
    return client.post(url, body or {}, content_type="application/json")


def test_claim_draft_submit_and_replay_with_a_token(project, annotator):
    make_comparisons(project, 3)
    api = _client(annotator)
    claimed = _post(api, f"/api/projects/{project.slug}/claim/").json()
    assignment = Assignment.objects.get(pk=claimed["assignment"])
    assert assignment.annotator.user == annotator
    shown = {k for k, v in claimed.items() if v is not None}  # no stored A/B, no gold
    assert shown == {"assignment", "kind", "reserved_until", "prompt", "left", "right"}
    # The same open reservation again, not a second one.
    assert _post(api, f"/api/projects/{project.slug}/claim/").json()["assignment"] == assignment.pk

    base = f"/api/projects/{project.slug}/assignments/{assignment.pk}"
    assert _post(api, f"{base}/draft/", {"data": {"preference": "-1"}, "version": 0}).json() == {"version": 1}
    stale = _post(api, f"{base}/draft/", {"data": {"preference": "2"}, "version": 0})
    assert stale.status_code == 409 and stale.json()["version"] == 1
    assert Draft.objects.get(assignment=assignment).data == {"preference": "-1"}

    body = {"answers": SAFE_ANSWERS, "submission_id": "script-1"}
    first = _post(api, f"{base}/submit/", body)
    assert first.status_code == 200, first.content
    replay = _post(api, f"{base}/submit/", body)  # a retried request: the same judgment, nothing new
    assert replay.json() == first.json()
    assert Judgment.objects.filter(annotator__user=annotator).count() == 1
    judgment = Judgment.objects.get(pk=first.json()["judgment"])
    assert judgment.assignment_id == assignment.pk and judgment.revision_count == 1
    # The next claim is another comparison.
    assert _post(api, f"/api/projects/{project.slug}/claim/").json()["assignment"] != assignment.pk


def test_others_assignments_are_404_and_nothing_is_written(project, annotator, annotator2, outsider):
    make_comparisons(project, 2)
    mine = _post(_client(annotator), f"/api/projects/{project.slug}/claim/").json()["assignment"]
    base = f"/api/projects/{project.slug}/assignments/{mine}"
    for user in (annotator2, outsider):
        api = _client(user)
        assert (
            _post(api, f"{base}/submit/", {"answers": SAFE_ANSWERS, "submission_id": "x"}).status_code == 404
        )
        assert _post(api, f"{base}/draft/", {"data": {}, "version": 0}).status_code == 404
        assert _post(api, f"{base}/skip/", {"reason": "other", "note": "n"}).status_code == 404
    assert _post(_client(outsider), f"/api/projects/{project.slug}/claim/").status_code == 404
    assert not Judgment.objects.exists() and not Draft.objects.exists()
    assert Assignment.objects.get(pk=mine).status == Assignment.Status.RESERVED


def test_refusals_are_json_and_say_what_is_wrong(project, annotator):
    make_comparisons(project, 2)
    api = _client(annotator)
    assignment = _post(api, f"/api/projects/{project.slug}/claim/").json()["assignment"]
    base = f"/api/projects/{project.slug}/assignments/{assignment}"
    bad = _post(api, f"{base}/submit/", {"answers": {"preference": "9"}, "submission_id": "s-1"})
    assert bad.status_code == 400 and bad["Content-Type"].startswith("application/json")
    assert "preference" in bad.json()["errors"]
    skip = _post(api, f"{base}/skip/", {"reason": "sleepy"})
    assert skip.status_code == 400 and "reason" in skip.json()["errors"]
    assert _post(api, f"{base}/skip/", {"reason": "other", "note": "Not my language."}).json() == {
        "skipped": assignment
    }
    again = _post(api, f"{base}/submit/", {"answers": SAFE_ANSWERS, "submission_id": "s-2"})
    assert again.status_code == 409 and "error" in again.json()
    unauthenticated = Client().post(f"/api/projects/{project.slug}/claim/")
    assert unauthenticated.status_code == 401 and unauthenticated["Content-Type"].startswith(
        "application/json"
    )


def test_a_token_shares_the_users_submit_limit(project, annotator, settings):
    settings.ARBITER_SUBMIT_RATE = 0.01
    settings.ARBITER_SUBMIT_BURST = 1
    cache.clear()
    make_comparisons(project, 3)
    api = _client(annotator)
    statuses = []
    for n in range(2):
        assignment = _post(api, f"/api/projects/{project.slug}/claim/").json()["assignment"]
        url = f"/api/projects/{project.slug}/assignments/{assignment}/submit/"
        response = _post(api, url, {"answers": SAFE_ANSWERS, "submission_id": f"rate-{n}"})
        statuses.append(response.status_code)
    assert statuses == [200, 429]
    assert response["Retry-After"].isdigit() and "Too many submits" in response.json()["error"]
    cache.clear()


def test_the_labelling_api_is_in_the_openapi_schema(client, annotator):
    client.force_login(annotator)
    paths = client.get("/api/openapi.json").json()["paths"]
    for suffix in ("claim/", "{assignment_id}/submit/", "{assignment_id}/draft/", "{assignment_id}/skip/"):
        assert any(p.endswith(suffix) and "post" in ops for p, ops in paths.items()), suffix


def test_a_model_judge_labels_with_its_token_outside_k(project, annotator, admin_user):
    from annotate.models import Comparison
    from projects.models import Membership
    from projects.people import membership_set_model_judge

    make_comparisons(project, 1)
    membership = Membership.objects.get(user=annotator, project=project)
    membership_set_model_judge(membership=membership, model_judge=True, actor=admin_user)
    api = _client(annotator)
    claimed = _post(api, f"/api/projects/{project.slug}/claim/").json()
    body = {"answers": SAFE_ANSWERS, "submission_id": "judge-1"}
    done = _post(api, f"/api/projects/{project.slug}/assignments/{claimed['assignment']}/submit/", body)
    assert done.status_code == 200, done.content
    judgment = Judgment.objects.get(pk=done.json()["judgment"])
    assert judgment.annotator.kind == "model"
    assert Comparison.objects.get().crowd_judgments == 0
