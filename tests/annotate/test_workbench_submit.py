"""Submitting a judgment: canonical order, validation, idempotency, expiry, counters, gold feedback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.assignment import claim_next
from annotate.models import Assignment, Comparison, Draft, Gold, Judgment, JudgmentRevision
from annotate.services import AnswerError, SubmissionRefused, submit_judgment
from tests.annotate.workbench_support import answers
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


@pytest.fixture
def assignment(project, annotator):
    make_comparisons(project, 3)
    return claim_next(project=project, user=annotator)


@pytest.mark.parametrize("shown_left", ["a", "b"])
def test_answers_are_stored_relative_to_canonical_order(assignment, annotator, shown_left):
    Assignment.objects.filter(pk=assignment.pk).update(shown_left=shown_left)
    assignment.refresh_from_db()
    j = submit_judgment(
        assignment=assignment,
        user=annotator,
        answers=answers(
            left_safe="unsafe", left_harm_categories=["privacy_violation"], left_severity="minor"
        ),
        submission_id="s1",
    )
    left_is_a = shown_left == "a"
    assert j.preference == (-2 if left_is_a else 2)
    assert j.choice == ("a" if left_is_a else "b")
    assert j.helpfulness == ("a" if left_is_a else "b")
    assert j.harmlessness == "tie"
    unsafe, safe = ("a", "b") if left_is_a else ("b", "a")
    assert getattr(j, f"{unsafe}_safe") is False
    assert getattr(j, f"{unsafe}_harm_categories") == ["privacy_violation"]
    assert getattr(j, f"{unsafe}_severity") == "minor"
    assert getattr(j, f"{safe}_safe") is True and getattr(j, f"{safe}_severity") is None
    assert j.shown_left == shown_left


def test_double_submit_records_one_judgment(assignment, annotator):
    first = submit_judgment(assignment=assignment, user=annotator, answers=answers(), submission_id="same")
    second = submit_judgment(assignment=assignment, user=annotator, answers=answers(), submission_id="same")
    assert first.pk == second.pk
    assert Judgment.objects.count() == 1 and JudgmentRevision.objects.count() == 1
    assert Comparison.objects.get(pk=assignment.comparison_id).crowd_judgments == 1


def test_second_submission_with_a_new_id_is_refused(assignment, annotator):
    submit_judgment(assignment=assignment, user=annotator, answers=answers(), submission_id="one")
    with pytest.raises(SubmissionRefused, match="already submitted"):
        submit_judgment(assignment=assignment, user=annotator, answers=answers(), submission_id="two")
    assert Judgment.objects.count() == 1


def test_missing_answers_name_each_field_and_store_nothing(project, assignment, annotator):
    project.justification = "required"
    project.save()
    with pytest.raises(AnswerError) as err:
        submit_judgment(
            assignment=assignment,
            user=annotator,
            answers={"helpfulness": "sideways", "left_safe": "unsafe", "left_harm_categories": ["made_up"]},
            submission_id="bad",
        )
    assert set(err.value.errors) >= {
        "preference",
        "helpfulness",
        "harmlessness",
        "right_safe",
        "left_harm_categories",
        "left_severity",
        "justification",
    }
    assert "made_up" in err.value.errors["left_harm_categories"]
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get(pk=assignment.pk).status == "reserved"


def test_safe_response_with_severity_is_refused(assignment, annotator):
    with pytest.raises(AnswerError) as err:
        submit_judgment(
            assignment=assignment, user=annotator, answers=answers(left_severity="severe"), submission_id="x"
        )
    assert "left_severity" in err.value.errors


def test_questions_the_project_does_not_ask_are_not_required(project, assignment, annotator):
    project.ask_helpful_harmless = False
    project.ask_safety = False
    project.save()
    j = submit_judgment(assignment=assignment, user=annotator, answers={"preference": "0"}, submission_id="p")
    assert j.choice == "tie" and j.helpfulness is None and j.a_safe is None


def test_time_on_task_is_recorded(assignment, annotator):
    j = submit_judgment(
        assignment=assignment, user=annotator, answers=answers(time_spent_ms="12345"), submission_id="t"
    )
    assert j.time_spent_ms == 12345


def test_submission_after_expiry_is_accepted_while_a_slot_is_free(assignment, annotator):
    Assignment.objects.filter(pk=assignment.pk).update(reserved_until=timezone.now() - timedelta(hours=1))
    assignment.refresh_from_db()
    j = submit_judgment(assignment=assignment, user=annotator, answers=answers(), submission_id="late")
    assert j.pk and Assignment.objects.get(pk=assignment.pk).status == "submitted"


def test_submission_after_expiry_is_refused_when_full_and_the_draft_is_kept(project, assignment, annotator):
    Assignment.objects.filter(pk=assignment.pk).update(reserved_until=timezone.now() - timedelta(hours=1))
    assignment.refresh_from_db()
    Comparison.objects.filter(pk=assignment.comparison_id).update(crowd_judgments=project.overlap_k)
    with pytest.raises(SubmissionRefused, match="kept as a draft"):
        submit_judgment(assignment=assignment, user=annotator, answers=answers(), submission_id="late")
    assert Judgment.objects.count() == 0
    assert Draft.objects.get(assignment=assignment).data["helpfulness"] == "left"


def test_gold_judgment_does_not_count_toward_k(project, annotator):
    (c,) = make_comparisons(project, 1)
    Gold.objects.create(comparison=c, choice="a")
    project.gold_share = 1.0
    project.save()
    a = claim_next(project=project, user=annotator)
    j = submit_judgment(assignment=a, user=annotator, answers=answers(), submission_id="g")
    assert j.is_gold and Comparison.objects.get(pk=c.pk).crowd_judgments == 0


def test_another_users_assignment_cannot_be_submitted(assignment, annotator2):
    with pytest.raises(SubmissionRefused):
        submit_judgment(assignment=assignment, user=annotator2, answers=answers(), submission_id="z")


def test_htmx_submit_returns_the_next_comparison_in_one_request(client, project, annotator, assignment):
    client.force_login(annotator)
    url = reverse("workbench_submit", args=[project.slug, assignment.pk])
    resp = client.post(url, answers() | {"submission_id": "h1"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200
    body = resp.content.decode()
    nxt = Assignment.objects.get(annotator__user=annotator, status="reserved")
    assert f'data-assignment="{nxt.pk}"' in body
    assert "<html" not in body  # a partial, not a page
    # The same form posted again (double click) records nothing new and shows the same next comparison.
    again = client.post(url, answers() | {"submission_id": "h1"}, HTTP_HX_REQUEST="true")
    assert f'data-assignment="{nxt.pk}"' in again.content.decode()
    assert Judgment.objects.count() == 1


def test_htmx_submit_with_errors_shows_them_beside_the_fields(client, project, annotator, assignment):
    client.force_login(annotator)
    url = reverse("workbench_submit", args=[project.slug, assignment.pk])
    resp = client.post(url, {"submission_id": "e1", "helpfulness": "left"}, HTTP_HX_REQUEST="true")
    body = resp.content.decode()
    assert "Choose the overall preference" in body
    assert f'data-assignment="{assignment.pk}"' in body
    assert Judgment.objects.count() == 0


def test_gold_feedback_is_shown_after_a_gold_comparison_when_enabled(client, project, annotator):
    comparisons = make_comparisons(project, 2)
    Gold.objects.create(comparison=comparisons[0], choice="b", explanation="B cites its source.")
    project.gold_share = 1.0
    project.show_gold_feedback = True
    project.save()
    client.force_login(annotator)
    a = claim_next(project=project, user=annotator)
    assert a.is_gold
    url = reverse("workbench_submit", args=[project.slug, a.pk])
    resp = client.post(url, answers() | {"submission_id": "gf"}, HTTP_HX_REQUEST="true")
    body = resp.content.decode()
    assert "Check question" in body and "B cites its source." in body


def test_json_api_pair_claims_and_submits(client, project, annotator, assignment):
    client.force_login(annotator)
    claimed = client.post(reverse("api:labelling_claim", args=[project.slug])).json()
    assert claimed["assignment"] == assignment.pk
    assert "gold" not in str(claimed).lower()
    url = reverse("api:labelling_submit", args=[project.slug, assignment.pk])
    payload = {"answers": answers(), "submission_id": "api-1"}
    first = client.post(url, payload, content_type="application/json").json()
    second = client.post(url, payload, content_type="application/json").json()
    assert first["judgment"] == second["judgment"]
    bad = client.post(url, {"answers": {}, "submission_id": "api-2"}, content_type="application/json")
    assert bad.status_code in (400, 409)


def test_a_safe_answers_leftover_details_are_reported_where_they_can_be_seen(
    client, project, assignment, annotator
):
    """Without the page's script (which clears them), a safe answer may still carry categories and a severity:
    their errors show beside the visible safe / unsafe question, not inside the hidden unsafe details."""
    client.force_login(annotator)
    url = reverse("workbench_submit", args=[project.slug, assignment.pk])
    data = answers(left_harm_categories=[project.harm_categories[0]], left_severity="minor")
    page = client.post(url, data | {"submission_id": "leftover"}).content.decode()
    left = page[page.index('id="left-safety"') :]
    details = left.index('class="unsafe-details"')
    visible, hidden = left[:details], left[details : left.index("</article>")]
    assert "A safe response has no harm categories. A safe response has no severity." in visible
    assert "field-error" not in hidden
    assert not Judgment.objects.exists()
