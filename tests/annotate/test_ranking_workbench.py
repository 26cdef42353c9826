"""The ranking workbench page: cards in display order, the form's submit, errors beside their fields, access."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotate.models import Assignment, Draft, Judgment, Ranking
from tests.conftest import login
from tests.factories import make_ranking_item

pytestmark = pytest.mark.django_db


def _form(assignment: Assignment, tiers, **fields) -> dict:
    data = {"submission_id": "form-1", "tiers": json.dumps(tiers), **fields}
    for rid in assignment.display_order:
        data.setdefault(f"r{rid}_safe", "safe")
    return data


def _open(client, project, user) -> tuple[Assignment, str]:
    """The user opens the workbench on an item of three responses: their assignment and its submit URL."""
    make_ranking_item(project, 3)
    login(client, user).get(reverse("workbench", args=[project.slug]))
    assignment = Assignment.objects.get(annotator__user=user)
    return assignment, reverse("workbench_submit", args=[project.slug, assignment.pk])


def test_page_shows_the_prompt_and_the_cards_in_the_stored_order(client, ranking_project, annotator):
    item = make_ranking_item(ranking_project, 4, "Which **answer** is best?")
    page = login(client, annotator).get(reverse("workbench", args=[ranking_project.slug]))
    assert page.status_code == 200
    assignment = Assignment.objects.get(annotator__user=annotator)
    html = page.content.decode()
    assert "<strong>answer</strong>" in html  # the prompt as Markdown
    positions = [html.index(f'data-rid="{rid}"') for rid in assignment.display_order]
    assert positions == sorted(positions)
    assert 'data-kind="ranking"' in html and 'name="tiers"' in html
    assert all(f'name="r{rid}_safe"' in html for rid in assignment.display_order)
    assert "preference" not in html  # no pair questions
    assert item.responses.count() == 4


def test_submit_by_htmx_stores_the_ranking_and_serves_the_next_item(client, ranking_project, annotator):
    make_ranking_item(ranking_project, 3, "first")
    make_ranking_item(ranking_project, 3, "second")
    login(client, annotator).get(reverse("workbench", args=[ranking_project.slug]))
    assignment = Assignment.objects.get(annotator__user=annotator)
    Draft.objects.create(assignment=assignment, data={"tiers": "[]"}, version=1)
    a, b, c = assignment.display_order
    url = reverse("workbench_submit", args=[ranking_project.slug, assignment.pk])
    cat = ranking_project.harm_categories[0]
    fields = {
        f"r{b}_safe": "unsafe",
        f"r{b}_harm_categories": [cat],
        f"r{b}_severity": "moderate",
        "all_bad": "on",
        "justification": "B is harmful.",
    }
    resp = client.post(url, _form(assignment, [[a, c], [b]], **fields), headers={"HX-Request": "true"})
    assert resp.status_code == 200
    ranking = Ranking.objects.get(annotator__user=annotator)
    assert ranking.tiers == [[a, c], [b]] and ranking.all_bad and ranking.justification == "B is harmful."
    assert ranking.safety[str(b)] == {"safe": False, "harm_categories": [cat], "severity": "moderate"}
    assert Judgment.objects.filter(ranking=ranking).count() == 3
    assert not Draft.objects.filter(assignment=assignment).exists()
    nxt = Assignment.objects.get(annotator__user=annotator, status=Assignment.Status.RESERVED)
    assert f'data-rid="{nxt.display_order[0]}"' in resp.content.decode()


def test_refused_submit_shows_each_error_beside_its_card(client, ranking_project, annotator):
    assignment, url = _open(client, ranking_project, annotator)
    a, b, c = assignment.display_order
    data = _form(assignment, [[a], [b]], **{f"r{c}_safe": "unsafe"})
    resp = client.post(url, data, headers={"HX-Request": "true"})
    html = resp.content.decode()
    assert "Rank every response; missing: " + str(c) in html
    assert "Pick at least one harm category for response 3." in html
    assert not Ranking.objects.exists()
    # The form comes back with what was sent, for the page to apply.
    assert f'"r{c}_safe": "unsafe"' in html


def test_others_get_404_on_a_ranking_assignment(client, ranking_project, annotator, annotator2, outsider):
    assignment, url = _open(client, ranking_project, annotator)
    for user in (annotator2, outsider):
        resp = login(client, user).post(url, _form(assignment, [assignment.display_order]))
        assert resp.status_code == 404
    assert not Ranking.objects.exists()


def test_history_lists_rankings_and_the_revise_page_stores_a_revision(client, ranking_project, annotator):
    assignment, url = _open(client, ranking_project, annotator)
    a, b, c = assignment.display_order
    client.post(url, _form(assignment, [[a], [b], [c]]), headers={"HX-Request": "true"})
    ranking = Ranking.objects.get()
    revise = reverse("workbench_revise_ranking", args=[ranking_project.slug, ranking.pk])
    assert revise in client.get(reverse("workbench_history", args=[ranking_project.slug])).content.decode()
    page = client.get(revise).content.decode()
    assert "Revise your ranking" in page and f"[[{a}],[{b}],[{c}]]" in page  # prefilled with the answers
    bad = client.post(revise, _form(assignment, [[c]], submission_id="rev-0"))
    assert bad.status_code == 400 and "Rank every response" in bad.content.decode()
    done = client.post(revise, _form(assignment, [[c, b], [a]], submission_id="rev-1"))
    assert done.status_code == 302
    ranking.refresh_from_db()
    assert ranking.tiers == [[c, b], [a]] and ranking.revision_count == 2
    assert {j.revision_count for j in Judgment.objects.filter(ranking=ranking)} == {2}
