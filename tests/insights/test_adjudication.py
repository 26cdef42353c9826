"""Adjudication: a researcher's final label overrides the vote in consensus, with who and why recorded;
and sending comparisons back for more judgments."""

from __future__ import annotations

import pytest

from annotate.models import Comparison, Gold
from insights.adjudication import (
    AdjudicationError,
    adjudication_clear,
    adjudication_set,
    comparisons_request_more,
)
from insights.consensus import consensus_for_project, consensus_outcomes
from insights.models import Adjudication
from projects.models import AuditEvent
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparison


def split_comparison(project):
    c = make_comparison(project, "Which is kinder?", "Sure, here you go.", "No.")
    add_judgment(c, crowd_annotator(project, "x"), preference=-2)
    add_judgment(c, crowd_annotator(project, "y"), preference=2)
    add_judgment(c, crowd_annotator(project, "z"), preference=3)
    return c


@pytest.mark.django_db
def test_adjudication_overrides_the_vote_in_consensus_and_is_audited(project, researcher):
    c = split_comparison(project)
    assert [r.chosen for r in consensus_for_project(project)] == ["b"]
    adjudication_set(
        comparison=c, axis="overall", choice="a", reason="B refuses a harmless request.", user=researcher
    )
    (row,) = consensus_for_project(project)
    assert (row.chosen, row.label_origin) == ("a", "adjudicated")
    event = AuditEvent.objects.get(action="adjudication.set")
    assert (event.actor, event.project, event.target_id) == (researcher, project, str(c.pk))
    assert event.data == {
        "axis": "overall",
        "choice": "a",
        "reason": "B refuses a harmless request.",
        "previous": None,
    }
    # A second decision replaces the first and records what it replaced.
    adjudication_set(comparison=c, axis="overall", choice="tie", reason="Both are fine.", user=researcher)
    assert Adjudication.objects.get(comparison=c).choice == "tie"
    assert AuditEvent.objects.filter(action="adjudication.set").first().data["previous"] == "a"
    assert next(consensus_outcomes(project)).status == "tie_override"
    assert adjudication_clear(comparison=c, axis="overall", user=researcher)
    assert [r.chosen for r in consensus_for_project(project)] == ["b"]


@pytest.mark.django_db
def test_adjudication_needs_a_reason_a_known_axis_and_choice(project, researcher):
    c = split_comparison(project)
    for kwargs, message in (
        ({"axis": "overall", "choice": "a", "reason": "  "}, "reason"),
        ({"axis": "style", "choice": "a", "reason": "x"}, "axis"),
        ({"axis": "overall", "choice": "c", "reason": "x"}, "choice"),
    ):
        with pytest.raises(AdjudicationError, match=message):
            adjudication_set(comparison=c, user=researcher, **kwargs)
    assert not Adjudication.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_researcher_adjudicates_through_the_comparison_page(client, project, researcher):
    c = split_comparison(project)
    url = f"/p/{project.slug}/comparisons/{c.pk}/adjudicate/"
    login(client, researcher)
    response = client.post(
        url, {"axis": "harmlessness", "choice": "b", "reason": "A gives dangerous advice."}
    )
    assert response.status_code == 302
    a = Adjudication.objects.get(comparison=c)
    assert (a.axis, a.choice, a.decided_by) == ("harmlessness", "b", researcher)
    page = client.get(f"/p/{project.slug}/comparisons/{c.pk}/").content.decode()
    assert "A gives dangerous advice." in page
    # Without a reason nothing is saved and the page says why.
    response = client.post(url, {"axis": "overall", "choice": "a", "reason": ""}, follow=True)
    assert "reason" in response.content.decode()
    assert Adjudication.objects.filter(comparison=c).count() == 1


@pytest.mark.django_db
def test_adjudication_queue_walks_through_the_selected_comparisons(client, project, researcher):
    first, second = split_comparison(project), make_comparison(project, "other", "p", "q")
    login(client, researcher)
    response = client.get(f"/p/{project.slug}/adjudicate/", {"ids": f"{second.pk},{first.pk}"})
    queue = f"{first.pk},{second.pk}"
    assert response.url == f"/p/{project.slug}/comparisons/{first.pk}/?queue={queue}"
    response = client.post(
        f"/p/{project.slug}/comparisons/{first.pk}/adjudicate/",
        {"axis": "overall", "choice": "b", "reason": "r", "queue": queue, "next": "1"},
    )
    assert response.url == f"/p/{project.slug}/comparisons/{second.pk}/?queue={queue}"


@pytest.mark.django_db
def test_sending_comparisons_back_raises_their_k(client, project, researcher, other_project):
    c = split_comparison(project)
    gold = make_comparison(project, "gold", "g", "h")
    Gold.objects.create(comparison=gold, choice="a")
    foreign = make_comparison(other_project, "theirs", "a", "b")
    assert (
        comparisons_request_more(project=project, comparison_ids=[c.pk, gold.pk, foreign.pk], user=researcher)
        == 1
    )
    assert Comparison.objects.get(pk=c.pk).extra_k == 1
    assert (
        Comparison.objects.get(pk=foreign.pk).extra_k == 0 and Comparison.objects.get(pk=gold.pk).extra_k == 0
    )
    login(client, researcher)
    client.post(f"/p/{project.slug}/comparisons/more/", {"ids": [c.pk], "extra": "2"})
    assert Comparison.objects.get(pk=c.pk).extra_k == 3
    assert AuditEvent.objects.filter(action="comparison.more_judgments").count() == 2
    with pytest.raises(AdjudicationError):
        comparisons_request_more(project=project, comparison_ids=[c.pk], extra=0, user=researcher)


@pytest.mark.django_db
def test_annotators_and_outsiders_cannot_adjudicate(client, project, annotator, outsider):
    c = split_comparison(project)
    for user in (annotator, outsider):
        login(client, user)
        assert (
            client.post(
                f"/p/{project.slug}/comparisons/{c.pk}/adjudicate/",
                {"axis": "overall", "choice": "a", "reason": "r"},
            ).status_code
            == 404
        )
        assert client.post(f"/p/{project.slug}/comparisons/more/", {"ids": [c.pk]}).status_code == 404
    assert not Adjudication.objects.exists() and Comparison.objects.get(pk=c.pk).extra_k == 0
