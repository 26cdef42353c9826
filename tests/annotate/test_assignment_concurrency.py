"""Claims racing in real transactions: the database, not Python, keeps k and one reservation per annotator."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection

from annotate.assignment import annotator_for, claim_next
from annotate.models import Assignment
from projects.models import Membership, Project
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db(transaction=True)


def race(n: int, work) -> list:
    """Run `work(i)` in n threads released together; each thread uses and closes its own connection."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported below with the thread number
            errors.append((i, repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_fifty_annotators_claiming_at_once_fill_exactly_k_per_comparison():
    project = Project.objects.create(name="Race", slug="race", overlap_k=3)
    comparisons = make_comparisons(project, 10)
    users = [User.objects.create(username=f"racer{i}") for i in range(50)]
    Membership.objects.bulk_create(
        Membership(user=u, project=project, role=Membership.Role.ANNOTATOR) for u in users
    )
    for u in users:  # created up front so the race is about the claim only
        annotator_for(project=project, user=u)

    results = race(50, lambda i: getattr(claim_next(project=project, user=users[i]), "pk", None))

    got = [pk for pk in results if pk is not None]
    assert len(got) == 30
    rows = list(Assignment.objects.filter(project=project).values_list("comparison_id", "annotator_id"))
    assert len(rows) == 30
    assert len(set(rows)) == 30  # no annotator twice on one comparison
    per_comparison = Counter(c for c, _ in rows)
    assert per_comparison == {c.pk: 3 for c in comparisons}
    assert len({a for _, a in rows}) == 30  # 30 distinct annotators got one each; 20 found nothing


def test_one_annotator_claiming_from_many_tabs_at_once_gets_one_reservation():
    project = Project.objects.create(name="Tabs", slug="tabs", overlap_k=3)
    make_comparisons(project, 5)
    user = User.objects.create(username="tabby")
    Membership.objects.create(user=user, project=project, role=Membership.Role.ANNOTATOR)
    annotator_for(project=project, user=user)  # the race is on the reservation, not the identity

    results = race(8, lambda i: claim_next(project=project, user=user).pk)

    assert len(set(results)) == 1
    assert Assignment.objects.filter(project=project).count() == 1


def test_claims_racing_in_the_uncertainty_order_still_fill_exactly_k():
    from tests.annotate.test_queue_order import score

    project = Project.objects.create(name="Race U", slug="race-u", overlap_k=3, queue_order="uncertainty")
    comparisons = make_comparisons(project, 10)
    score(project, comparisons, [0.1 * (i + 1) for i in range(9)] + [None])
    users = [User.objects.create(username=f"uracer{i}") for i in range(40)]
    Membership.objects.bulk_create(
        Membership(user=u, project=project, role=Membership.Role.ANNOTATOR) for u in users
    )
    for u in users:
        annotator_for(project=project, user=u)

    results = race(40, lambda i: getattr(claim_next(project=project, user=users[i]), "pk", None))
    # A claimer that found every candidate locked by others got nothing (SKIP LOCKED): the slots it left
    # are still free, and the ones who got nothing claim them now, one after another.
    late = [claim_next(project=project, user=users[i]) for i, pk in enumerate(results) if pk is None]

    assert len([pk for pk in results if pk is not None]) + len([a for a in late if a is not None]) == 30
    rows = list(Assignment.objects.filter(project=project).values_list("comparison_id", "chosen_by"))
    assert Counter(c for c, _ in rows) == {c.pk: 3 for c in comparisons}
    assert Counter(by for _, by in rows) == {"uncertainty": 27, "default": 3}
