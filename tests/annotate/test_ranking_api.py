"""The labelling API on a ranking project: claim an item's responses in display order, draft, submit tiers."""

from __future__ import annotations

import pytest

from annotate.models import Assignment, Draft, Judgment, Ranking
from tests.annotate.test_labelling_api import _client, _post
from tests.factories import make_ranking_item

pytestmark = pytest.mark.django_db


def test_claim_draft_submit_and_replay_a_ranking(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 4)
    api = _client(annotator)
    claimed = _post(api, f"/api/projects/{ranking_project.slug}/claim/").json()
    assignment = Assignment.objects.get(pk=claimed["assignment"])
    assert claimed["kind"] == "ranking" and claimed["prompt"] == item.prompt
    assert [r["id"] for r in claimed["responses"]] == assignment.display_order
    assert {r["text"] for r in claimed["responses"]} == set(item.responses.values_list("text", flat=True))

    ids = assignment.display_order
    base = f"/api/projects/{ranking_project.slug}/assignments/{assignment.pk}"
    assert _post(api, f"{base}/draft/", {"data": {"tiers": [ids]}, "version": 0}).json() == {"version": 1}
    assert Draft.objects.get(assignment=assignment).data == {"tiers": [ids]}

    answers = {
        "tiers": [[ids[2]], [ids[0], ids[1]], [ids[3]]],
        "safety": {str(rid): {"safe": True} for rid in ids},
    }
    body = {"answers": answers, "submission_id": "rank-1", "draft_version": 1}
    first = _post(api, f"{base}/submit/", body)
    assert first.status_code == 200, first.content
    assert _post(api, f"{base}/submit/", body).json() == first.json()  # a retried request: the same ranking
    ranking = Ranking.objects.get(pk=first.json()["ranking"])
    assert ranking.tiers == answers["tiers"] and Judgment.objects.filter(ranking=ranking).count() == 6
    assert not Draft.objects.filter(assignment=assignment).exists()


def test_bad_rankings_are_400_naming_the_field(ranking_project, annotator):
    make_ranking_item(ranking_project, 3)
    api = _client(annotator)
    claimed = _post(api, f"/api/projects/{ranking_project.slug}/claim/").json()
    ids = [r["id"] for r in claimed["responses"]]
    base = f"/api/projects/{ranking_project.slug}/assignments/{claimed['assignment']}"
    bad = _post(
        api,
        f"{base}/submit/",
        {
            "answers": {"tiers": [[ids[0]], [ids[1], ids[1]]], "safety": {str(ids[0]): {"safe": "maybe"}}},
            "submission_id": "b",
        },
    )
    assert bad.status_code == 400
    errors = bad.json()["errors"]
    assert "more than once" in errors["tiers"]
    assert f"safety.{ids[0]}.safe" in errors and f"safety.{ids[2]}.safe" in errors
    unknown = _post(api, f"{base}/submit/", {"answers": {"tiers": [[999999], ids]}, "submission_id": "c"})
    assert "Not a response of this item: 999999" in unknown.json()["errors"]["tiers"]
    wrong_type = _post(api, f"{base}/submit/", {"answers": [1, 2], "submission_id": "d"})
    assert wrong_type.status_code == 422  # the schema names `answers`
    assert "answers" in str(wrong_type.json())
    assert not Ranking.objects.exists() and not Judgment.objects.exists()


def test_another_projects_annotator_gets_404(ranking_project, annotator, annotator2, outsider):
    make_ranking_item(ranking_project, 3)
    claimed = _post(_client(annotator), f"/api/projects/{ranking_project.slug}/claim/").json()
    ids = [r["id"] for r in claimed["responses"]]
    base = f"/api/projects/{ranking_project.slug}/assignments/{claimed['assignment']}"
    for user in (annotator2, outsider):
        api = _client(user)
        body = {"answers": {"tiers": [ids]}, "submission_id": f"x-{user.pk}"}
        assert _post(api, f"{base}/submit/", body).status_code == 404
        assert _post(api, f"{base}/draft/", {"data": {}, "version": 0}).status_code == 404
    assert _post(_client(outsider), f"/api/projects/{ranking_project.slug}/claim/").status_code == 404
    assert not Ranking.objects.exists()
