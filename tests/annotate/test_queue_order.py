"""The model queue orders: least-certain or most-disputed comparisons first, with k, gold and reservations kept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.assignment import claim_next
from annotate.models import Assignment, Comparison, Gold, Judgment
from curation.models import DatasetSnapshot
from projects.models import Annotator
from rewardtrain.models import ModelVersion, Score, TrainingRun
from tests.annotate.test_assignment import label, members
from tests.factories import add_judgment, make_comparisons

pytestmark = pytest.mark.django_db


def score(project, comparisons, margins, *, active=True):
    """An active reward model scoring each comparison's B above A by `margins[i]` (None: unscored)."""
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="tiny")
    model = ModelVersion.objects.create(
        run=run, project=project, path="/m", snapshot_hash="0" * 64, is_active=active
    )
    for c, m in zip(comparisons, margins, strict=True):
        if m is not None:
            Score.objects.create(model_version=model, response=c.response_a, value=0.5)
            Score.objects.create(model_version=model, response=c.response_b, value=0.5 + m)
    return model


def ordered(project, order, **settings):
    project.queue_order = order
    for name, value in settings.items():
        setattr(project, name, value)
    project.save()


def test_uncertainty_serves_the_least_certain_first_then_unscored_in_default_order(project, annotator):
    cs = make_comparisons(project, 4)
    score(project, cs, [2.0, -0.1, 1.0, None])
    ordered(project, "uncertainty")
    served = []
    for i in range(5):
        a = claim_next(project=project, user=annotator)
        if a is None:
            break
        served.append((a.comparison_id, a.chosen_by))
        label(a, annotator, f"s{i}")
    assert served == [
        (cs[1].pk, "uncertainty"),
        (cs[2].pk, "uncertainty"),
        (cs[0].pk, "uncertainty"),
        (cs[3].pk, "default"),
    ]
    assert list(Assignment.objects.order_by("pk").values_list("chosen_by", flat=True)) == [
        "uncertainty",
        "uncertainty",
        "uncertainty",
        "default",
    ]


def test_uncertainty_keeps_k_and_skips_full_or_reserved_comparisons(project):
    cs = make_comparisons(project, 3)
    score(project, cs, [0.1, 0.2, 0.3])
    ordered(project, "uncertainty", overlap_k=1, reservation_minutes=5)
    u1, u2, u3, u4 = members(project, 4)
    first = claim_next(project=project, user=u1)
    assert first.comparison_id == cs[0].pk  # the least certain
    # Its one slot is held by u1's reservation: the next annotator gets the next least certain.
    second = claim_next(project=project, user=u2)
    assert second.comparison_id == cs[1].pk
    label(second, u2, "u2")
    # u1's reservation expires: its slot is free again and, still the least certain, served first.
    Assignment.objects.filter(pk=first.pk).update(reserved_until=timezone.now() - timedelta(minutes=1))
    third = claim_next(project=project, user=u3)
    assert third.comparison_id == cs[0].pk
    label(third, u3, "u3")
    # cs[0] and cs[1] are full (k = 1): only cs[2] is left, and then nothing.
    assert claim_next(project=project, user=u4).comparison_id == cs[2].pk
    assert claim_next(project=project, user=u1) is None
    per = Assignment.objects.exclude(status="expired").values_list("comparison_id", flat=True)
    assert sorted(per) == sorted(c.pk for c in cs)


def test_gold_share_holds_under_a_model_order(project, annotator):
    cs = make_comparisons(project, 3)
    score(project, cs, [0.1, 0.2, 0.3])
    Gold.objects.create(comparison=cs[2], choice="a")
    ordered(project, "uncertainty", gold_share=1.0)
    a = claim_next(project=project, user=annotator)
    assert (a.comparison_id, a.is_gold, a.chosen_by) == (cs[2].pk, True, "gold")
    label(a, annotator, "g")
    b = claim_next(project=project, user=annotator)  # no gold left: the least certain crowd comparison
    assert (b.comparison_id, b.is_gold, b.chosen_by) == (cs[0].pk, False, "uncertainty")


def test_disagreement_serves_the_most_disputed_first(project, annotator):
    cs = make_comparisons(project, 4)
    score(project, cs, [1.0, 1.0, -1.0, 1.0])  # the model prefers B, B, A, B
    x, y, z = (Annotator.objects.create(project=project, name=n) for n in "xyz")
    judge = Annotator.objects.create(project=project, name="judge", kind=Annotator.Kind.MODEL)
    add_judgment(cs[0], x, preference=-2)  # 1 against, 1 with the model: lean 0
    add_judgment(cs[0], y, preference=2)
    add_judgment(cs[1], x, preference=2)  # 1 with the model: lean -1; the model judge's vote does not count
    add_judgment(cs[1], judge, preference=-2)
    add_judgment(cs[2], x, preference=2)  # 2 of 2 against (the model prefers A): lean 1
    add_judgment(cs[2], z, preference=1)
    for c, n in ((cs[0], 2), (cs[1], 1), (cs[2], 2)):  # as submitting counts crowd judgments
        Comparison.objects.filter(pk=c.pk).update(crowd_judgments=n)
    ordered(project, "disagreement", overlap_k=5)
    served = []
    for i in range(4):
        a = claim_next(project=project, user=annotator)
        served.append((a.comparison_id, a.chosen_by))
        label(a, annotator, f"d{i}")
    assert served == [
        (cs[2].pk, "disagreement"),
        (cs[0].pk, "disagreement"),
        (cs[1].pk, "disagreement"),
        (cs[3].pk, "default"),  # no crowd votes yet
    ]


def test_without_an_active_model_a_model_order_is_the_default_order(project, annotator):
    cs = make_comparisons(project, 3)
    score(project, cs, [0.3, 0.2, 0.1], active=False)
    ordered(project, "uncertainty")
    expected = claim_next(project=project, user=annotator)
    assert expected.chosen_by == "default"
    assert expected.comparison_id == min(cs, key=lambda c: c.random_key).pk


def test_agreement_figures_count_assignments_by_the_order_that_chose_them(project, admin_user):
    from insights.agreement import project_figures
    from tests.insights.test_model_judges import dashboard_page

    cs = make_comparisons(project, 3)
    score(project, cs, [0.2, 0.1, None])
    ordered(project, "uncertainty")
    for i, user in enumerate(members(project, 3)):
        for j in range(3):
            label(claim_next(project=project, user=user), user, f"{i}-{j}")
    Judgment.objects.update(choice="a", preference=-2)  # unanimous (the shown side was drawn at random)
    Judgment.objects.filter(comparison=cs[2], annotator__user__username="u0").update(choice="b", preference=2)
    by = project_figures(project, n_resamples=10)["chosen_by"]
    assert by == {
        # u0 alone against two: the others agree on A for u0 only (a 1–1 split for the other two).
        "default": {"assignments": 3, "submitted": 3, "consensus_counted": 1, "agreement_with_consensus": 0.0},
        "uncertainty": {
            "assignments": 6,
            "submitted": 6,
            "consensus_counted": 6,
            "agreement_with_consensus": 1.0,
        },
    }
    page = dashboard_page(project, admin_user)
    assert "By queue order" in page and "<td>uncertainty</td><td>6</td>" in page
