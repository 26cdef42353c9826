"""Rankings stored as themselves and as the pair judgments they imply: submit, revise, resubmit, drafts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.assignment import claim_next
from annotate.erasure import annotator_erase
from annotate.models import Assignment, Comparison, Gold, Judgment, Ranking, RankingRevision
from annotate.ranking_services import gold_accuracy, revise_ranking, submit_ranking
from annotate.services import AnswerError, StaleDraft, SubmissionRefused, save_draft, skip_assignment
from projects.models import Project
from tests.factories import make_ranking_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranking_project(ranking_project) -> Project:
    """Without the safety question: these tests are about the order."""
    ranking_project.ask_safety = False
    ranking_project.save()
    return ranking_project


def safe_for(ids) -> dict:
    return {str(rid): {"safe": True} for rid in ids}


def test_claim_serves_an_item_with_its_responses_in_a_stored_random_order(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 5)
    assignment = claim_next(project=ranking_project, user=annotator)
    assert assignment.item_id == item.pk and assignment.comparison_id is None
    assert sorted(assignment.display_order) == sorted(item.responses.values_list("pk", flat=True))
    again = claim_next(project=ranking_project, user=annotator)  # a reload gets the same order
    assert again.pk == assignment.pk and again.display_order == assignment.display_order


def test_items_with_too_few_or_too_many_responses_are_not_served(ranking_project, annotator):
    make_ranking_item(ranking_project, 2, "two")
    make_ranking_item(ranking_project, 10, "ten", pairs=False)
    assert claim_next(project=ranking_project, user=annotator) is None


def test_submit_stores_the_ranking_and_one_judgment_per_pair_with_ties(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 4)
    r = list(item.responses.order_by("pk").values_list("pk", flat=True))
    assignment = claim_next(project=ranking_project, user=annotator)
    tiers = [[r[2]], [r[0], r[3]], [r[1]]]
    ranking = submit_ranking(
        assignment=assignment, user=annotator, answers={"tiers": tiers}, submission_id="s1"
    )
    assert ranking.tiers == tiers and ranking.display_order == assignment.display_order
    assert ranking.revisions.count() == 1
    judgments = {
        (j.comparison.response_a_id, j.comparison.response_b_id): j
        for j in Judgment.objects.filter(ranking=ranking).select_related("comparison")
    }
    assert len(judgments) == 6  # K(K−1)/2
    # Comparisons are ordered A = the earlier response: choice is relative to that.
    assert judgments[(r[0], r[1])].choice == "a"
    assert judgments[(r[0], r[2])].choice == "b"
    assert judgments[(r[0], r[3])].choice == "tie"
    assert judgments[(r[1], r[2])].choice == "b"
    assert judgments[(r[1], r[3])].choice == "b"
    assert judgments[(r[2], r[3])].choice == "a"
    assert all(j.preference is None and j.revisions.count() == 1 for j in judgments.values())
    assert set(Comparison.objects.filter(item=item).values_list("crowd_judgments", flat=True)) == {1}
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.SUBMITTED


def test_resubmitting_the_same_submission_id_returns_the_same_ranking(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 3)
    r = list(item.responses.values_list("pk", flat=True))
    assignment = claim_next(project=ranking_project, user=annotator)
    first = submit_ranking(assignment=assignment, user=annotator, answers={"tiers": [r]}, submission_id="x")
    again = submit_ranking(assignment=assignment, user=annotator, answers={"tiers": [r]}, submission_id="x")
    assert again.pk == first.pk
    assert Ranking.objects.count() == 1 and Judgment.objects.count() == 3
    with pytest.raises(SubmissionRefused):
        submit_ranking(assignment=assignment, user=annotator, answers={"tiers": [r]}, submission_id="y")


def test_revise_appends_a_revision_and_revises_every_implied_judgment(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 3)
    a, b, c = item.responses.order_by("pk").values_list("pk", flat=True)
    assignment = claim_next(project=ranking_project, user=annotator)
    ranking = submit_ranking(
        assignment=assignment, user=annotator, answers={"tiers": [[a], [b], [c]]}, submission_id="1"
    )
    revised = revise_ranking(
        ranking=ranking,
        user=annotator,
        answers={"tiers": [[c], [b], [a]], "all_bad": True},
        submission_id="2",
    )
    assert revised.revision_count == 2 and revised.tiers == [[c], [b], [a]] and revised.all_bad
    assert list(RankingRevision.objects.filter(ranking=ranking).values_list("number", flat=True)) == [1, 2]
    judgments = Judgment.objects.filter(ranking=ranking)
    assert judgments.count() == 3
    assert {j.choice for j in judgments} == {"b"} and {j.revision_count for j in judgments} == {2}
    # k is counted once per judgment, not per revision.
    assert set(Comparison.objects.filter(item=item).values_list("crowd_judgments", flat=True)) == {1}
    again = revise_ranking(ranking=ranking, user=annotator, answers={"tiers": [[a, b, c]]}, submission_id="2")
    assert again.tiers == [[c], [b], [a]]  # the same submission id: nothing new


def test_revision_window_and_ownership(ranking_project, annotator, annotator2):
    item = make_ranking_item(ranking_project, 3)
    ids = list(item.responses.values_list("pk", flat=True))
    assignment = claim_next(project=ranking_project, user=annotator)
    ranking = submit_ranking(
        assignment=assignment, user=annotator, answers={"tiers": [ids]}, submission_id="1"
    )
    with pytest.raises(SubmissionRefused):
        revise_ranking(ranking=ranking, user=annotator2, answers={"tiers": [ids]}, submission_id="2")
    Ranking.objects.filter(pk=ranking.pk).update(created_at=timezone.now() - timedelta(hours=25))
    with pytest.raises(SubmissionRefused, match="window"):
        revise_ranking(ranking=ranking, user=annotator, answers={"tiers": [ids]}, submission_id="3")


def test_bad_answers_name_the_field_and_store_nothing(ranking_project, annotator):
    ranking_project.ask_safety = True
    ranking_project.save()
    item = make_ranking_item(ranking_project, 3)
    a, b, c = item.responses.values_list("pk", flat=True)
    assignment = claim_next(project=ranking_project, user=annotator)
    with pytest.raises(AnswerError) as bad:
        submit_ranking(
            assignment=assignment,
            user=annotator,
            answers={
                "tiers": [[a], [b]],
                "safety": {
                    str(a): {"safe": True, "severity": "minor"},
                    str(b): {"safe": False, "harm_categories": ["nope"]},
                },
            },
            submission_id="s",
        )
    errors = bad.value.errors
    assert "missing: " + str(c) in errors["tiers"]
    assert errors[f"safety.{a}.severity"] == "A safe response has no severity."
    assert "Not in this project's list: nope" in errors[f"safety.{b}.harm_categories"]
    assert f"safety.{b}.severity" in errors and f"safety.{c}.safe" in errors
    assert not Ranking.objects.exists() and not Judgment.objects.exists()


def test_safety_is_copied_to_each_pair(ranking_project, annotator):
    ranking_project.ask_safety = True
    ranking_project.save()
    item = make_ranking_item(ranking_project, 3)
    a, b, c = item.responses.order_by("pk").values_list("pk", flat=True)
    assignment = claim_next(project=ranking_project, user=annotator)
    cat = ranking_project.harm_categories[0]
    safety = safe_for([a, c]) | {str(b): {"safe": False, "harm_categories": [cat], "severity": "severe"}}
    ranking = submit_ranking(
        assignment=assignment,
        user=annotator,
        answers={"tiers": [[a], [c], [b]], "safety": safety},
        submission_id="s",
    )
    ab = Judgment.objects.get(ranking=ranking, comparison__response_a=a, comparison__response_b=b)
    assert (ab.a_safe, ab.b_safe, ab.b_harm_categories, ab.b_severity) == (True, False, [cat], "severe")
    assert ranking.safety[str(b)] == {"safe": False, "harm_categories": [cat], "severity": "severe"}


def test_missing_pair_comparisons_are_created(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 4, pairs=False)
    ids = list(item.responses.values_list("pk", flat=True))
    assignment = claim_next(project=ranking_project, user=annotator)
    submit_ranking(
        assignment=assignment, user=annotator, answers={"tiers": [[i] for i in ids]}, submission_id="s"
    )
    assert Comparison.objects.filter(item=item).count() == 6
    assert Judgment.objects.filter(comparison__item=item).count() == 6


def test_k_rankings_then_the_item_is_full(ranking_project, annotator, annotator2):
    ranking_project.overlap_k = 1
    ranking_project.save()
    item = make_ranking_item(ranking_project, 3)
    ids = list(item.responses.values_list("pk", flat=True))
    first = claim_next(project=ranking_project, user=annotator)
    assert claim_next(project=ranking_project, user=annotator2) is None  # held by the reservation
    submit_ranking(assignment=first, user=annotator, answers={"tiers": [ids]}, submission_id="s")
    assert claim_next(project=ranking_project, user=annotator2) is None  # full
    assert claim_next(project=ranking_project, user=annotator) is None  # done by them


def test_drafts_and_skips_reuse_the_pair_machinery(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 3)
    ids = list(item.responses.values_list("pk", flat=True))
    assignment = claim_next(project=ranking_project, user=annotator)
    v1 = save_draft(assignment=assignment, user=annotator, data={"tiers": [ids]}, version=0, tab="t1", seq=1)
    save_draft(
        assignment=assignment, user=annotator, data={"tiers": [ids[::-1]]}, version=v1, tab="t2", seq=1
    )
    with pytest.raises(StaleDraft):  # tab 1 submitting over tab 2's newer draft
        submit_ranking(
            assignment=assignment,
            user=annotator,
            answers={"tiers": [ids]},
            submission_id="s",
            draft_version=v1,
            draft_tab="t1",
        )
    skip_assignment(assignment=assignment, user=annotator, reason="expertise")
    make_ranking_item(ranking_project, 3, "next one")
    nxt = claim_next(project=ranking_project, user=annotator)
    assert nxt.item_id != item.pk


def test_gold_ranking_items_count_gold_pairs_ordered_as_gold_says(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 3)
    a, b, c = item.responses.order_by("pk").values_list("pk", flat=True)
    for comparison in Comparison.objects.filter(item=item):
        Gold.objects.create(comparison=comparison, choice="a")  # gold order: a > b > c
    ranking_project.gold_share = 1.0
    ranking_project.save()
    assignment = claim_next(project=ranking_project, user=annotator)
    assert assignment.is_gold
    ranking = submit_ranking(
        assignment=assignment, user=annotator, answers={"tiers": [[a], [c], [b]]}, submission_id="g"
    )
    assert ranking.is_gold and gold_accuracy(ranking) == (2, 3)
    assert set(Comparison.objects.filter(item=item).values_list("crowd_judgments", flat=True)) == {0}


def test_erasure_blanks_a_rankings_justification_and_keeps_the_order(ranking_project, annotator):
    item = make_ranking_item(ranking_project, 3)
    ids = list(item.responses.values_list("pk", flat=True))
    assignment = claim_next(project=ranking_project, user=annotator)
    answers = {"tiers": [ids], "justification": "Signed, Ann from Leeds."}
    ranking = submit_ranking(assignment=assignment, user=annotator, answers=answers, submission_id="1")
    revise_ranking(ranking=ranking, user=annotator, answers=answers, submission_id="2")
    annotator_erase(project=ranking_project, username=annotator.username)
    ranking.refresh_from_db()
    assert ranking.justification == "" and ranking.tiers == [ids]
    assert set(RankingRevision.objects.values_list("justification", flat=True)) == {""}
    assert set(Judgment.objects.values_list("justification", flat=True)) == {""}
