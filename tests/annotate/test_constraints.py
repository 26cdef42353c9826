"""The database itself refuses what must never exist, whatever code path writes (not only Python checks)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotate.models import Assignment, Comparison, Judgment, JudgmentRevision
from curation.canonical import pair_key
from curation.snapshots import create_snapshot
from projects.models import Membership
from rewardtrain.models import ModelVersion, TrainingRun
from tests.factories import add_judgment, crowd_annotator, make_comparison

pytestmark = pytest.mark.django_db


def refused(create) -> bool:
    try:
        with transaction.atomic():
            create()
    except IntegrityError:
        return True
    return False


def test_one_comparison_per_project_and_unordered_pair(project, other_project):
    comparison = make_comparison(project, "Q", "first", "second")
    a, b = comparison.response_a, comparison.response_b
    # The same pair in the other order has the same pair key: refused.
    assert refused(
        lambda: Comparison.objects.create(
            project=project,
            item=comparison.item,
            response_a=b,
            response_b=a,
            pair_key=pair_key(comparison.item.prompt_key, b.text_key, a.text_key),
        )
    )
    # The same pair in another project is another comparison.
    assert make_comparison(other_project, "Q", "first", "second").pk != comparison.pk


def test_a_comparison_needs_two_different_responses(project):
    comparison = make_comparison(project)
    assert refused(
        lambda: Comparison.objects.create(
            project=project,
            item=comparison.item,
            response_a=comparison.response_a,
            response_b=comparison.response_a,
            pair_key="x" * 64,
        )
    )


def test_one_assignment_per_comparison_and_annotator(project, annotator):
    comparison = make_comparison(project)
    ann = crowd_annotator(project, "ann", user=annotator)
    Assignment.objects.create(project=project, comparison=comparison, annotator=ann, status="submitted")
    assert refused(
        lambda: Assignment.objects.create(
            project=project, comparison=comparison, annotator=ann, status="skipped"
        )
    )


def test_one_open_reservation_per_annotator_and_project(project, annotator):
    first, second = make_comparison(project, "Q1"), make_comparison(project, "Q2")
    ann = crowd_annotator(project, "ann", user=annotator)
    Assignment.objects.create(project=project, comparison=first, annotator=ann, status="reserved")
    assert refused(
        lambda: Assignment.objects.create(
            project=project, comparison=second, annotator=ann, status="reserved"
        )
    )


def test_one_judgment_per_annotator_and_comparison_and_unique_submission_ids(project):
    comparison = make_comparison(project)
    rater = crowd_annotator(project, "rater")
    judgment = add_judgment(comparison, rater, preference=-2)
    now = timezone.now()
    assert refused(
        lambda: Judgment.objects.create(
            project=project, comparison=comparison, annotator=rater, created_at=now, updated_at=now
        )
    )
    JudgmentRevision.objects.filter(judgment=judgment).update(submission_id="sub-1")
    other = add_judgment(make_comparison(project, "Q2"), rater, preference=1)
    assert refused(
        lambda: JudgmentRevision.objects.create(
            judgment=other, number=2, submission_id="sub-1", created_at=now
        )
    )
    assert refused(lambda: JudgmentRevision.objects.create(judgment=judgment, number=1, created_at=now))


def test_a_comparisons_project_is_its_items(project, other_project):
    comparison = make_comparison(project)

    def move():
        Comparison.objects.filter(pk=comparison.pk).update(project=other_project)
        connection.check_constraints()  # the foreign keys are deferred: check them now

    assert refused(move)


def test_a_judgments_annotator_is_of_the_judgments_project(project, other_project):
    comparison = make_comparison(project)
    now = timezone.now()

    def judge(annotator):
        def create():
            Judgment.objects.create(
                project=project, comparison=comparison, annotator=annotator, created_at=now, updated_at=now
            )
            connection.check_constraints()  # the foreign keys are deferred: check them now

        return create

    assert refused(judge(crowd_annotator(other_project, "stranger")))
    assert not refused(judge(crowd_annotator(project, "rater")))


@pytest.mark.parametrize("preference", [-4, 4])
def test_preference_outside_the_seven_point_scale_is_refused(project, preference):
    comparison = make_comparison(project)
    rater = crowd_annotator(project, "rater")
    now = timezone.now()
    assert refused(
        lambda: Judgment.objects.create(
            project=project,
            comparison=comparison,
            annotator=rater,
            preference=preference,
            created_at=now,
            updated_at=now,
        )
    )


def test_a_safe_response_has_no_severity(project):
    comparison = make_comparison(project)
    rater = crowd_annotator(project, "rater")
    now = timezone.now()
    assert refused(
        lambda: Judgment.objects.create(
            project=project,
            comparison=comparison,
            annotator=rater,
            a_safe=True,
            a_severity="severe",
            created_at=now,
            updated_at=now,
        )
    )


def test_one_membership_per_user_and_project(project, annotator):
    assert refused(lambda: Membership.objects.create(user=annotator, project=project, role="researcher"))


def test_one_model_version_per_run_and_one_active_model_per_kind(project):
    snapshot = create_snapshot(project=project)
    runs = [
        TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="tiny", status="succeeded")
        for _ in range(2)
    ]
    ModelVersion.objects.create(run=runs[0], project=project, path="/m/0", snapshot_hash="h", is_active=True)
    assert refused(
        lambda: ModelVersion.objects.create(run=runs[0], project=project, path="/m/1", snapshot_hash="h")
    )
    assert refused(
        lambda: ModelVersion.objects.create(
            run=runs[1], project=project, path="/m/2", snapshot_hash="h", is_active=True
        )
    )
