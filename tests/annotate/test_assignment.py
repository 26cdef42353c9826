"""The queue: k different annotators per comparison, one open reservation, expiry, order, gold, pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from annotate.assignment import claim_next
from annotate.models import Assignment, Comparison, Gold
from annotate.services import submit_judgment
from projects.models import Membership
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db

SAFE = {
    "preference": -1,
    "helpfulness": "left",
    "harmlessness": "tie",
    "left_safe": "safe",
    "right_safe": "safe",
}


def members(project, n, prefix="u"):
    """Annotator logins without password hashing (slow by design and not needed here)."""
    users = [User.objects.create(username=f"{prefix}{i}") for i in range(n)]
    Membership.objects.bulk_create(
        Membership(user=u, project=project, role=Membership.Role.ANNOTATOR) for u in users
    )
    return users


def label(assignment, user, sid):
    return submit_judgment(assignment=assignment, user=user, answers=SAFE, submission_id=sid)


def test_reload_returns_the_same_open_reservation(project, annotator):
    make_comparisons(project, 3)
    first = claim_next(project=project, user=annotator)
    again = claim_next(project=project, user=annotator)
    assert first is not None and again.pk == first.pk
    assert Assignment.objects.filter(status="reserved").count() == 1


def test_each_comparison_gets_k_judgments_from_k_different_annotators(project):
    project.overlap_k = 2
    project.save()
    comparisons = make_comparisons(project, 3)
    users = members(project, 7)
    for i, user in enumerate(users):
        a = claim_next(project=project, user=user)
        if a is not None:
            label(a, user, f"s{i}")
    for c in Comparison.objects.filter(pk__in=[c.pk for c in comparisons]):
        assert c.crowd_judgments == 2
        annotators = list(c.judgments.values_list("annotator_id", flat=True))
        assert len(set(annotators)) == 2
    # The seventh annotator found nothing: every comparison already had k.
    assert Assignment.objects.count() == 6


def test_annotator_never_gets_the_same_comparison_twice(project, annotator):
    make_comparisons(project, 2)
    seen = []
    for i in range(3):
        a = claim_next(project=project, user=annotator)
        if a is None:
            break
        seen.append(a.comparison_id)
        label(a, annotator, f"x{i}")
    assert len(seen) == 2 and len(set(seen)) == 2


def test_extra_k_asks_for_more_judgments(project):
    project.overlap_k = 1
    project.save()
    (c,) = make_comparisons(project, 1)
    Comparison.objects.filter(pk=c.pk).update(extra_k=1)
    users = members(project, 3)
    got = [claim_next(project=project, user=u) for u in users]
    assert sum(a is not None for a in got) == 2


def test_expired_reservation_returns_to_the_pool(project):
    project.overlap_k = 1
    project.save()
    make_comparisons(project, 1)
    u1, u2 = members(project, 2)
    held = claim_next(project=project, user=u1)
    assert claim_next(project=project, user=u2) is None  # the only slot is held
    Assignment.objects.filter(pk=held.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    taken = claim_next(project=project, user=u2)
    assert taken is not None and taken.comparison_id == held.comparison_id


def test_own_expired_reservation_is_renewed_when_its_slot_is_still_free(project, annotator):
    make_comparisons(project, 2)
    held = claim_next(project=project, user=annotator)
    Assignment.objects.filter(pk=held.pk).update(reserved_until=timezone.now() - timedelta(minutes=1))
    again = claim_next(project=project, user=annotator)
    assert again.pk == held.pk and again.reserved_until > timezone.now()


def test_own_expired_reservation_whose_slot_was_taken_is_expired_and_replaced(project):
    project.overlap_k = 1
    project.save()
    make_comparisons(project, 2)
    u1, u2 = members(project, 2)
    held = claim_next(project=project, user=u1)
    Assignment.objects.filter(pk=held.pk).update(reserved_until=timezone.now() - timedelta(minutes=1))
    # u2 drains the pool: the first pick is the freed comparison or the other one; label both.
    for i in range(2):
        a = claim_next(project=project, user=u2)
        label(a, u2, f"u2-{i}")
    nxt = claim_next(project=project, user=u1)
    assert nxt is None
    assert Assignment.objects.get(pk=held.pk).status == "expired"


def test_queue_serves_fewest_judgments_first(project):
    project.overlap_k = 3
    project.save()
    first, second = make_comparisons(project, 2)
    Comparison.objects.filter(pk=first.pk).update(crowd_judgments=2, random_key=0.0)
    Comparison.objects.filter(pk=second.pk).update(crowd_judgments=0, random_key=0.9)
    (u,) = members(project, 1)
    assert claim_next(project=project, user=u).comparison_id == second.pk


def test_left_right_order_is_randomised_and_stored(project):
    project.overlap_k = 40
    project.save()
    make_comparisons(project, 1)
    users = members(project, 30)
    sides = {claim_next(project=project, user=u).shown_left for u in users}
    assert sides == {"a", "b"}


def test_paused_project_gives_no_new_work(project, annotator):
    make_comparisons(project, 2)
    project.paused = True
    project.save()
    assert claim_next(project=project, user=annotator) is None


def test_paused_membership_gives_no_new_work(project, annotator, annotator2):
    make_comparisons(project, 2)
    Membership.objects.filter(user=annotator).update(paused_reason="gold accuracy below 70 %")
    assert claim_next(project=project, user=annotator) is None
    assert claim_next(project=project, user=annotator2) is not None


def test_deleted_comparisons_are_never_served(project, annotator):
    (c,) = make_comparisons(project, 1)
    Comparison.objects.filter(pk=c.pk).update(deleted_at=timezone.now())
    assert claim_next(project=project, user=annotator) is None


def test_gold_is_mixed_at_the_project_share_outside_k(project):
    project.gold_share = 0.25
    project.overlap_k = 1
    project.save()
    crowd = make_comparisons(project, 60)
    for c in crowd[:20]:
        Gold.objects.create(comparison=c, choice="a")
    (user,) = members(project, 1)
    served = []
    for i in range(40):
        a = claim_next(project=project, user=user)
        served.append(a.is_gold)
        label(a, user, f"g{i}")
    gold = sum(served)
    # Within one of the share at every point (the deficit rule), and exactly near it at the end.
    assert abs(gold - 0.25 * 40) <= 1
    assert 0 < sum(served[:8]) <= 3
    # Gold judgments are outside k: gold comparisons' crowd counter stays at zero.
    assert set(Comparison.objects.filter(gold__isnull=False).values_list("crowd_judgments", flat=True)) == {0}
    assert Assignment.objects.filter(is_gold=True, comparison__gold__isnull=True).count() == 0


def test_gold_is_served_to_every_annotator_regardless_of_k(project):
    project.gold_share = 1.0
    project.overlap_k = 1
    project.save()
    (g,) = make_comparisons(project, 1)
    Gold.objects.create(comparison=g, choice="b")
    users = members(project, 3)
    got = [claim_next(project=project, user=u) for u in users]
    assert all(a is not None and a.is_gold and a.comparison_id == g.pk for a in got)
