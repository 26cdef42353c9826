"""The rubric checklist on a ranking: one checklist per response on the page, checked per response on submit,
and stored on every implied pair's revision (each side gets its response's answers)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.assignment import claim_next
from annotate.models import Judgment
from annotate.ranking_services import submit_ranking
from annotate.services import AnswerError
from projects.models import Project
from rubrics import services
from rubrics.models import CriterionAnswer
from tests.conftest import login
from tests.factories import make_ranking_item
from tests.rubrics.conftest import build_rubric

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranked(project, annotator):
    """A ranking project with a pinned rubric and the annotator's claimed item of three responses."""
    project.task_kind = Project.TaskKind.RANKING
    project.ask_safety = False
    project.rubric_essential_blocks = True
    project.save()
    services.project_pin_version(project=project, version=build_rubric(), user=None)
    make_ranking_item(project, 3)
    return claim_next(project=project, user=annotator)


def _keys(project) -> dict[str, str]:
    return {c.text: c.key for c in services.pinned_views(project)}


def test_each_card_has_its_checklist_named_by_its_number(client, project, annotator, ranked):
    html = login(client, annotator).get(reverse("workbench", args=[project.slug])).content.decode()
    essential = _keys(project)["Answers the question"]
    for number, rid in enumerate(ranked.display_order, start=1):
        assert f'name="rubric-{rid}-{essential}"' in html
        assert f"Checklist for response {number}" in html


def test_essential_criteria_block_per_response_and_answers_land_on_each_pair(project, annotator, ranked):
    a, b, c = ranked.display_order
    essential = _keys(project)["Answers the question"]
    answers = {"tiers": [[a], [b], [c]], "rubric": {str(a): {essential: "yes"}, str(b): {essential: "no"}}}
    with pytest.raises(AnswerError) as refused:
        submit_ranking(assignment=ranked, user=annotator, answers=answers, submission_id="s0")
    assert set(refused.value.errors) == {f"rubric-{c}-{essential}"}
    answers["rubric"][str(c)] = {essential: "yes"}
    with pytest.raises(AnswerError, match="rubric: Not a response of this item: 0"):
        submit_ranking(
            assignment=ranked, user=annotator, answers=answers | {"rubric": {"0": {}}}, submission_id="s0"
        )
    ranking = submit_ranking(assignment=ranked, user=annotator, answers=answers, submission_id="s1")
    given = {str(a): "yes", str(b): "no", str(c): "yes"}
    for judgment in Judgment.objects.filter(ranking=ranking).select_related("comparison"):
        stored = dict(
            CriterionAnswer.objects.filter(revision__judgment=judgment, criterion_key=essential).values_list(
                "side", "answer"
            )
        )
        cmp = judgment.comparison
        assert stored == {"a": given[str(cmp.response_a_id)], "b": given[str(cmp.response_b_id)]}
