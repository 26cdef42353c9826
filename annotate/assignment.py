"""The annotation queue: which comparison an annotator gets next. Policy and guarantees: assignment.md."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .access import is_admin
from .models import Annotator, Assignment, Comparison, Gold, Membership, Project

RESERVED = Assignment.Status.RESERVED
# A few tries when a locked candidate turns out full on the fresh recheck (another claimer filled it).
_MAX_TRIES = 8


def annotator_for(*, project: Project, user) -> Annotator:
    """The crowd Annotator row of a login within a project, created on first use (name = username)."""
    found = Annotator.objects.filter(project=project, user=user).first()
    if found is not None:
        return found
    name = user.get_username()
    if Annotator.objects.filter(project=project, name=name).exists():
        # An imported annotator already carries that name: imported names are never matched to logins.
        name = f"{name} (user {user.pk})"
    try:
        with transaction.atomic():
            return Annotator.objects.create(project=project, user=user, name=name)
    except IntegrityError:
        return Annotator.objects.get(project=project, user=user)


def labelling_blocked_reason(*, project: Project, user) -> str:
    """Why this user gets no new work on the project now ('' when they may label)."""
    if project.paused:
        return "Labelling on this project is paused."
    reason = (
        Membership.objects.filter(project=project, user=user, is_active=True)
        .values_list("paused_reason", flat=True)
        .first()
    )
    if reason:
        return f"Your labelling on this project is paused: {reason}"
    return ""


def wanted(project: Project):
    """The crowd judgments a comparison wants, as an expression: the project's k plus its extra_k."""
    return Value(project.overlap_k) + F("extra_k")


def live_reservations(now, *, exclude_assignment: int | None = None):
    """Subquery: unexpired crowd reservations holding a slot on the outer comparison."""
    qs = Assignment.objects.filter(
        comparison=OuterRef("pk"), status=RESERVED, is_gold=False, reserved_until__gt=now
    )
    if exclude_assignment is not None:
        qs = qs.exclude(pk=exclude_assignment)
    return Coalesce(
        Subquery(qs.order_by().values("comparison").annotate(n=Count("pk")).values("n")[:1]), Value(0)
    )


def has_free_slot(*, comparison: Comparison, project: Project, exclude_assignment: int | None = None) -> bool:
    """Fresh count (call with the comparison row locked): crowd judgments + live reservations < wanted."""
    now = timezone.now()
    return (
        Comparison.objects.filter(pk=comparison.pk)
        .alias(held=live_reservations(now, exclude_assignment=exclude_assignment))
        .filter(crowd_judgments__lt=wanted(project) - F("held"))
        .exists()
    )


def available_crowd(*, project: Project, annotator: Annotator, now=None):
    """Comparisons this annotator could be given from the crowd pool (not gold, not full, not theirs before)."""
    now = now or timezone.now()
    return (
        Comparison.objects.filter(project=project, deleted_at__isnull=True)
        .filter(~Exists(Gold.objects.filter(comparison=OuterRef("pk"))))
        .filter(~Exists(Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)))
        .alias(held=live_reservations(now))
        .filter(crowd_judgments__lt=wanted(project) - F("held"))
    )


def available_gold(*, project: Project, annotator: Annotator):
    return (
        Comparison.objects.filter(project=project, deleted_at__isnull=True)
        .filter(Exists(Gold.objects.filter(comparison=OuterRef("pk"))))
        .filter(~Exists(Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)))
    )


def _wants_gold(project: Project, annotator: Annotator) -> bool:
    """Serve gold with the probability that keeps the annotator's gold share within one of the target.

    p = clamp(share·(n+1) − g, 0, 1) with n served and g gold so far: on average exactly the share, never
    drifting, and not on a fixed beat an annotator could learn.
    """
    if project.gold_share <= 0:
        return False
    counts = Assignment.objects.filter(annotator=annotator).aggregate(
        n=Count("pk", filter=~Q(status=Assignment.Status.SKIPPED)),
        g=Count("pk", filter=Q(is_gold=True) & ~Q(status=Assignment.Status.SKIPPED)),
    )
    p = project.gold_share * (counts["n"] + 1) - counts["g"]
    return random.random() < min(max(p, 0.0), 1.0)


def _reserve(
    project: Project, annotator: Annotator, comparison: Comparison, *, gold: bool, now
) -> Assignment:
    return Assignment.objects.create(
        project=project,
        comparison=comparison,
        annotator=annotator,
        is_gold=gold,
        shown_left=random.choice(("a", "b")),
        reserved_until=now + timedelta(minutes=project.reservation_minutes),
    )


def _open_reservation(project: Project, annotator: Annotator, now) -> Assignment | None:
    """The annotator's open reservation, renewed if it expired and its slot is still free; else expired."""
    current = (
        Assignment.objects.filter(project=project, annotator=annotator, status=RESERVED)
        .select_related("comparison__item", "comparison__response_a", "comparison__response_b")
        .first()
    )
    if current is None:
        return None
    if current.reserved_until and current.reserved_until > now:
        return current
    locked = Comparison.objects.select_for_update().filter(pk=current.comparison_id, deleted_at__isnull=True)
    if locked.exists() and (
        current.is_gold
        or has_free_slot(comparison=current.comparison, project=project, exclude_assignment=current.pk)
    ):
        current.reserved_until = now + timedelta(minutes=project.reservation_minutes)
        current.save(update_fields=["reserved_until"])
        return current
    current.status = Assignment.Status.EXPIRED
    current.save(update_fields=["status"])
    return None


def _lock_first(qs) -> Comparison | None:
    # The item and both responses come with the lock: the caller shows them without more queries.
    return (
        qs.select_for_update(skip_locked=True, of=("self",))
        .select_related("item", "response_a", "response_b")
        .order_by(*_ORDER)
        .first()
    )


def _lock_annotator(project: Project, user) -> Annotator | None:
    membership = Membership.objects.filter(project=project, user=user, is_active=True)
    return (
        Annotator.objects.select_for_update(of=("self",))
        .filter(project=project, user=user)
        .annotate(
            member_paused=Subquery(membership.values("paused_reason")[:1]),
            open_id=Subquery(
                Assignment.objects.filter(annotator=OuterRef("pk"), project=project, status=RESERVED).values(
                    "pk"
                )[:1]
            ),
        )
        .first()
    )


_ORDER = ("crowd_judgments", "random_key")  # exactly the comparison_queue index: an ordered scan, no sort


def claim_next(*, project: Project, user) -> Assignment | None:
    """The comparison reserved for `user` on `project`: their open reservation if any, else a new one.

    None when labelling is paused for them or nothing is left. Safe under any concurrency: the annotator
    row is locked (one claim per annotator at a time), candidate comparisons are locked with
    SELECT … FOR UPDATE SKIP LOCKED and re-counted after the lock on PostgreSQL; SQLite runs the whole
    claim in one IMMEDIATE transaction. The unique constraints on Assignment are the last line.
    """
    if project.paused:
        return None
    with transaction.atomic():
        # One statement locks the annotator row and brings their pause and open reservation along.
        annotator = _lock_annotator(project, user)
        if annotator is None:
            annotator_for(project=project, user=user)
            annotator = _lock_annotator(project, user)
        if annotator.member_paused or (annotator.member_paused is None and not is_admin(user)):
            return None  # labelling paused for them, or no active membership
        now = timezone.now()
        if annotator.open_id is not None:
            current = _open_reservation(project, annotator, now)
            if current is not None:
                return current
        if _wants_gold(project, annotator):
            gold = available_gold(project=project, annotator=annotator)
            picked = (
                gold.select_for_update(skip_locked=True, of=("self",))
                .select_related("item", "response_a", "response_b")
                .order_by("random_key")
                .first()
            )
            if picked is not None:
                return _reserve(project, annotator, picked, gold=True, now=now)
        pool = available_crowd(project=project, annotator=annotator, now=now)
        for _ in range(_MAX_TRIES):
            picked = _lock_first(pool)
            if picked is None:
                return None
            # The candidate filter ran on the statement's snapshot; recount now that the row is ours.
            if has_free_slot(comparison=picked, project=project):
                return _reserve(project, annotator, picked, gold=False, now=now)
            pool = pool.exclude(pk=picked.pk)
        return None


def remaining_for(*, project: Project, annotator: Annotator) -> int:
    """How many crowd comparisons this annotator could still be given (progress display)."""
    return available_crowd(project=project, annotator=annotator).count()
