"""The annotation queue: which comparison an annotator gets next. Policy and guarantees: assignment.md."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from functools import cache

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import Case, Count, Exists, F, FloatField, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Abs, Cast, Coalesce, Sign
from django.utils import timezone

from annotate import model_scores
from annotate.models import Assignment, Comparison, Gold, Item, Judgment, Ranking, Response
from annotate.rankings import MAX_RESPONSES, MIN_RESPONSES
from infra import prepared
from projects.access import is_admin
from projects.models import Annotator, Membership, Project
from projects.people import annotator_for  # noqa: F401 - the queue's callers take it from here

RESERVED = Assignment.Status.RESERVED
ChosenBy = Assignment.ChosenBy
# A few tries when a locked candidate turns out full on the fresh recheck (another claimer filled it).
_MAX_TRIES = 8


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
        crowd_pool(project=project, annotator=annotator)
        .alias(held=live_reservations(now))
        .filter(crowd_judgments__lt=wanted(project) - F("held"))
    )


def crowd_pool(*, project: Project, annotator: Annotator):
    """Live comparisons outside gold never given to this annotator, whether full or not."""
    return (
        Comparison.objects.filter(project=project, deleted_at__isnull=True)
        .filter(~Exists(Gold.objects.filter(comparison=OuterRef("pk"))))
        .filter(~Exists(Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)))
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


def _reserve(project: Project, annotator: Annotator, *, gold: bool, now, **work) -> Assignment:
    """Reserve `work`: a comparison (with the side shown left) or an item (with its display order)."""
    return Assignment.objects.create(
        project=project,
        annotator=annotator,
        is_gold=gold,
        chosen_by=ChosenBy.GOLD if gold else ChosenBy.DEFAULT,
        reserved_until=now + timedelta(minutes=project.reservation_minutes),
        **work,
    )


def _open_reservation(project: Project, annotator: Annotator, now) -> Assignment | None:
    """The annotator's open reservation, renewed if it expired and its slot is still free; else expired.
    A comparison's or, on a ranking project, an item's."""
    current = (
        Assignment.objects.filter(project=project, annotator=annotator, status=RESERVED)
        .select_related("comparison__item", "comparison__response_a", "comparison__response_b", "item")
        .first()
    )
    if current is None:
        return None
    if current.reserved_until and current.reserved_until > now:
        return current
    if current.item_id is not None:
        live = Item.objects.select_for_update().filter(pk=current.item_id, deleted_at__isnull=True).exists()
        renew = live and (
            current.is_gold
            or has_free_item_slot(item_id=current.item_id, project=project, exclude_assignment=current.pk)
        )
    else:
        live = (
            Comparison.objects.select_for_update()
            .filter(pk=current.comparison_id, deleted_at__isnull=True)
            .exists()
        )
        renew = live and (
            current.is_gold
            or has_free_slot(comparison=current.comparison, project=project, exclude_assignment=current.pk)
        )
    if renew:
        current.reserved_until = now + timedelta(minutes=project.reservation_minutes)
        current.save(update_fields=["reserved_until"])
        return current
    current.status = Assignment.Status.EXPIRED
    current.save(update_fields=["status"])
    return None


# The locked annotator's columns, the same in both lock statements: the membership's pause and the id of any
# open reservation come along.
_ANNOTATOR_COLUMNS = (
    "an.id, an.name, an.kind, m.paused_reason,"
    " (SELECT r.id FROM annotate_assignment r WHERE r.annotator_id = an.id AND r.project_id = an.project_id"
    " AND r.status = 'reserved' LIMIT 1)"
)
_LOCK_ANNOTATOR_SQL = (
    f"SELECT {_ANNOTATOR_COLUMNS}"
    " FROM annotate_annotator an"
    " LEFT JOIN annotate_membership m ON m.project_id = an.project_id AND m.user_id = an.user_id"
    " AND m.is_active = %s"
    " WHERE an.project_id = %s AND an.user_id = %s FOR UPDATE OF an"
)


def _locked_annotator(row, project_id: int, user_id: int) -> Annotator:
    """The annotator from `_ANNOTATOR_COLUMNS`, with `member_paused` ('' active, text paused, None no
    membership) and `open_id`."""
    an_id, name, kind, paused_reason, open_id = row
    annotator = Annotator.from_db(
        DEFAULT_DB_ALIAS,
        ["id", "project_id", "user_id", "name", "kind"],
        [an_id, project_id, user_id, name, kind],
    )
    annotator.member_paused, annotator.open_id = paused_reason, open_id
    return annotator


def _lock_annotator(project: Project, user) -> Annotator | None:
    """Lock the annotator row (see `_locked_annotator`)."""
    rows = prepared.run(_LOCK_ANNOTATOR_SQL, [True, project.pk, user.pk])
    return _locked_annotator(rows[0], project.pk, user.pk) if rows else None


# The API claim's first statement for a member who has claimed before: the project by its slug, the active
# membership (the access check member_project makes) and the annotator row, locked, in one statement.
_LOCK_MEMBER_SQL = (
    "SELECT {project}, " + _ANNOTATOR_COLUMNS + " FROM annotate_project p"
    " JOIN annotate_membership m ON m.project_id = p.id AND m.user_id = %s AND m.is_active = %s"
    " JOIN annotate_annotator an ON an.project_id = p.id AND an.user_id = m.user_id"
    " WHERE p.slug = %s AND p.deleted_at IS NULL FOR UPDATE OF an"
)


@cache
def _lock_member_sql() -> str:
    return _LOCK_MEMBER_SQL.format(project=prepared.columns(Project, "p"))


def _lock_member(slug: str, user) -> tuple[Project, Annotator] | None:
    rows = prepared.run(_lock_member_sql(), [user.pk, True, slug])
    if not rows:
        return None
    project = prepared.load(Project, rows[0])
    return project, _locked_annotator(rows[0][len(Project._meta.concrete_fields) :], project.pk, user.pk)


def claim_next_for_member(*, slug: str, user) -> tuple[Project, Assignment | None] | None:
    """`claim_next` on the project `slug` for a user with an active membership there and an annotator row
    (anyone who has claimed on it before): the membership check, the project's row and the annotator's lock
    are one statement, where the general path takes two (`access.member_project`, then the lock). Returns the
    project and what `claim_next` would return. None when that statement finds nothing — no such live project,
    no active membership, or no annotator row yet — and nothing was done: the caller then takes the general
    path (`member_project` or `get_project_for_user`, which answer 404, then `claim_next`)."""
    if not user.is_authenticated:
        return None
    try:
        return _claim_member(slug, user)
    except IntegrityError:  # as in claim_next: the same annotator's concurrent claim committed first
        return _claim_member(slug, user)


def _claim_member(slug: str, user) -> tuple[Project, Assignment | None] | None:
    with transaction.atomic():
        found = _lock_member(slug, user)
        if found is None:
            return None
        project, annotator = found
        return project, None if project.paused else _claim_locked(project, user, annotator)


def claim_next(*, project: Project, user) -> Assignment | None:
    """The comparison reserved for `user` on `project`: their open reservation if any, else a new one.

    None when labelling is paused for them or nothing is left. Safe under any concurrency: the annotator
    row is locked (one claim per annotator at a time), candidate comparisons are locked with
    SELECT … FOR UPDATE SKIP LOCKED and re-counted after the lock. The unique constraints on Assignment are
    the last line.
    """
    if project.paused:
        return None
    try:
        return _claim(project, user)
    except IntegrityError:
        # The same annotator's concurrent claim (another tab, a double click) committed a reservation while
        # we waited for their row lock: our locking read still saw the older snapshot. The unique constraint
        # stopped a second reservation; a fresh try finds theirs and returns it.
        return _claim(project, user)


def _claim(project: Project, user) -> Assignment | None:
    with transaction.atomic():
        # One statement locks the annotator row and brings their pause and open reservation along.
        annotator = _lock_annotator(project, user)
        if annotator is None:
            annotator_for(project=project, user=user)
            annotator = _lock_annotator(project, user)
        return _claim_locked(project, user, annotator)


def _claim_locked(project: Project, user, annotator: Annotator) -> Assignment | None:
    """The claim once the annotator row is locked (inside the claim's transaction)."""
    if annotator.member_paused or (annotator.member_paused is None and not is_admin(user)):
        return None  # labelling paused for them, or no active membership
    now = timezone.now()
    if annotator.open_id is not None:
        current = _open_reservation(project, annotator, now)
        if current is not None:
            return current
    if project.task_kind == Project.TaskKind.RANKING:
        return _claim_ranking(project, annotator, now)
    if _wants_gold(project, annotator):
        gold = available_gold(project=project, annotator=annotator)
        picked = (
            gold.select_for_update(skip_locked=True, of=("self",))
            .select_related("item", "response_a", "response_b")
            .order_by("random_key")
            .first()
        )
        if picked is not None:
            return _reserve(
                project,
                annotator,
                gold=True,
                now=now,
                comparison=picked,
                shown_left=random.choice(("a", "b")),
            )
    tried: list[int] = []
    by_model = project.queue_order != Project.QueueOrder.DEFAULT
    for _ in range(_MAX_TRIES):
        if by_model:
            picked, chosen_by = _pick_by_model(project, annotator, now, tried)
        else:
            picked, chosen_by = _pick_crowd(project, annotator, now, tried), ChosenBy.DEFAULT
        if picked is None:
            return None
        reserved = _reserve_if_free(project, annotator, picked, now, chosen_by)
        if reserved is not None:
            return reserved
        tried.append(picked.pk)  # filled by another claimer between our snapshot and our lock
    return None


# The hot path in SQL, run prepared (infra/prepared.py): ORM compilation of these statements cost more than
# running them. Columns and semantics are exactly those of available_crowd() and has_free_slot() above.
_LIVE_HELD = (
    "(SELECT COUNT(*) FROM annotate_assignment r WHERE r.comparison_id = c.id AND r.status = 'reserved'"
    " AND r.is_gold = %s AND r.reserved_until > %s)"
)
# The candidate is picked and locked in a CTE, then joined to its texts: PostgreSQL plans the two halves
# apart, which took its planning time for this statement from about 2.3 ms to 0.4 ms (the joins were planned
# together with the anti-joins and the count before); the CTE is not inlined because it locks rows.
_PICK_SQL = (
    "WITH picked AS (SELECT c.id, c.item_id, c.response_a_id, c.response_b_id FROM annotate_comparison c"
    " WHERE c.project_id = %s AND c.deleted_at IS NULL"
    " AND NOT EXISTS (SELECT 1 FROM annotate_gold g WHERE g.comparison_id = c.id)"
    " AND NOT EXISTS (SELECT 1 FROM annotate_assignment x WHERE x.comparison_id = c.id AND x.annotator_id = %s)"
    " AND c.crowd_judgments + " + _LIVE_HELD + " < %s + c.extra_k"
    "{exclude}"
    " ORDER BY c.crowd_judgments, c.random_key"
    " LIMIT 1 FOR UPDATE OF c SKIP LOCKED)"
    " SELECT p.id, p.item_id, p.response_a_id, p.response_b_id, i.prompt, ra.text, rb.text FROM picked p"
    " JOIN annotate_item i ON i.id = p.item_id"
    " JOIN annotate_response ra ON ra.id = p.response_a_id"
    " JOIN annotate_response rb ON rb.id = p.response_b_id"
)
# A new statement, so a new snapshot: it sees every reservation committed before we took the row lock.
_RESERVE_SQL = (
    "INSERT INTO annotate_assignment (project_id, comparison_id, annotator_id, status, is_gold, shown_left,"
    " reserved_until, skip_reason, created_at, submitted_at, chosen_by)"
    " SELECT %s, c.id, %s, 'reserved', %s, %s, %s, '', %s, NULL, %s FROM annotate_comparison c"
    " WHERE c.id = %s AND c.crowd_judgments + " + _LIVE_HELD + " < %s + c.extra_k"
    " RETURNING id"
)


def _json(value):
    return json.loads(value) if isinstance(value, str | bytes) else value


def _pick_crowd(project: Project, annotator: Annotator, now, tried: list[int]) -> Comparison | None:
    """Lock the first crowd candidate in queue order (skipping rows other claimers hold); with its texts."""
    exclude = "".join(" AND c.id <> %s" for _ in tried)
    params = [project.pk, annotator.pk, False, now, project.overlap_k, *tried]
    rows = prepared.run(_PICK_SQL.format(exclude=exclude), params)
    if not rows:
        return None
    cid, item_id, a_id, b_id, prompt, text_a, text_b = rows[0]
    comparison = Comparison.from_db(
        DEFAULT_DB_ALIAS,
        ["id", "project_id", "item_id", "response_a_id", "response_b_id"],
        [cid, project.pk, item_id, a_id, b_id],
    )  # other fields are deferred: loaded on access
    comparison.item = Item.from_db(
        DEFAULT_DB_ALIAS, ["id", "project_id", "prompt"], [item_id, project.pk, _json(prompt)]
    )
    comparison.response_a = Response.from_db(
        DEFAULT_DB_ALIAS, ["id", "item_id", "text"], [a_id, item_id, text_a]
    )
    comparison.response_b = Response.from_db(
        DEFAULT_DB_ALIAS, ["id", "item_id", "text"], [b_id, item_id, text_b]
    )
    return comparison


_ASSIGNMENT_FIELDS = [
    "id",
    "project_id",
    "comparison_id",
    "annotator_id",
    "status",
    "is_gold",
    "shown_left",
    "reserved_until",
    "skip_reason",
    "created_at",
    "submitted_at",
    "chosen_by",
]


def _reserve_if_free(
    project: Project, annotator: Annotator, comparison: Comparison, now, chosen_by: str
) -> Assignment | None:
    shown_left = random.choice(("a", "b"))
    until = now + timedelta(minutes=project.reservation_minutes)
    params = [
        *(project.pk, annotator.pk, False, shown_left, until, now, chosen_by),
        *(comparison.pk, False, now, project.overlap_k),
    ]
    rows = prepared.run(_RESERVE_SQL, params)
    if not rows:
        return None
    assignment = Assignment.from_db(
        DEFAULT_DB_ALIAS,
        _ASSIGNMENT_FIELDS,
        [
            *(rows[0][0], project.pk, comparison.pk, annotator.pk, RESERVED, False, shown_left, until, ""),
            *(now, None, chosen_by),
        ],
    )
    assignment.project, assignment.comparison, assignment.annotator = project, comparison, annotator
    return assignment


def _net_crowd_votes():
    """Subquery: the outer comparison's crowd (human) votes for A minus those for B (a choice, else the sign of
    the preference; ties count for neither)."""
    side = Case(
        When(Q(choice="a") | Q(choice__isnull=True, preference__lt=0), then=Value(1)),
        When(Q(choice="b") | Q(choice__isnull=True, preference__gt=0), then=Value(-1)),
        default=Value(0),
    )
    votes = (
        Judgment.objects.filter(
            comparison=OuterRef("pk"), is_source=False, annotator__kind=Annotator.Kind.CROWD
        )
        .order_by()
        .values("comparison")
        .annotate(net=Sum(side))
        .values("net")[:1]
    )
    return Subquery(votes)


def model_order_key(order: str):
    """The queue key of a model order, smaller first; NULL (served after the keyed ones, in the default
    order) where the active reward model has not scored both responses, or there is no active model.

    uncertainty: |score(B) − score(A)|. disagreement: minus the crowd's net lean against the model's side,
    (votes against − votes with) / crowd judgments, in −1…1 (NULL before the first crowd judgment; the vote
    subquery runs only on comparisons that have one).
    """
    margin = model_scores.active_score(OuterRef("response_b_id")) - model_scores.active_score(
        OuterRef("response_a_id")
    )
    if order == Project.QueueOrder.UNCERTAINTY:
        return Abs(margin)
    # The model prefers B (sign +1) and the crowd leans to A (net > 0): disagreement > 0, served first.
    lean = Cast(Sign(margin) * _net_crowd_votes(), FloatField()) / Cast(F("crowd_judgments"), FloatField())
    return Case(When(crowd_judgments=0, then=Value(None)), default=-lean, output_field=FloatField())


def _pick_by_model(
    project: Project, annotator: Annotator, now, tried: list[int]
) -> tuple[Comparison | None, str]:
    """`_pick_crowd` in a model order: the same candidates and the same lock (FOR UPDATE SKIP LOCKED), ordered
    by `model_order_key` and then as the default order. Returns the comparison and what chose it."""
    order = project.queue_order
    # available_crowd()'s rules, with the live-reservation count taken apart: counted per candidate, it ran
    # before the sort on every candidate (the default order's index scan stops at the first that passes).
    # The comparisons with live reservations are few (one per annotator at most): those full counting them
    # are left out by id.
    held = (
        Assignment.objects.filter(project=project, status=RESERVED, is_gold=False, reserved_until__gt=now)
        .order_by()
        .values("comparison")
    )
    full = list(
        Comparison.objects.filter(pk__in=held)
        .alias(held=live_reservations(now))
        .filter(crowd_judgments__gte=wanted(project) - F("held"))
        .values_list("pk", flat=True)
    )
    candidates = (
        crowd_pool(project=project, annotator=annotator)
        .filter(crowd_judgments__lt=wanted(project))
        .exclude(pk__in=[*full, *tried])
    )
    picked = (
        candidates.annotate(queue_key=model_order_key(order))
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("item", "response_a", "response_b")
        .order_by(F("queue_key").asc(nulls_last=True), "crowd_judgments", "random_key", "pk")
        .first()
    )
    if picked is None:
        return None, ChosenBy.DEFAULT
    return picked, ChosenBy.DEFAULT if picked.queue_key is None else order


def remaining_for(*, project: Project, annotator: Annotator) -> int:
    """How many crowd comparisons this annotator could still be given (progress display)."""
    return available_crowd(project=project, annotator=annotator).count()


# --- Rankings: the queue hands out items (assignment.md "Rankings") ----------------------------------------


def crowd_rankings():
    """Subquery: the outer item's crowd rankings (what k counts): not source labels, not gold, by crowd."""
    counted = Ranking.objects.filter(
        item=OuterRef("pk"), is_source=False, is_gold=False, annotator__kind=Annotator.Kind.CROWD
    )
    return Coalesce(
        Subquery(counted.order_by().values("item").annotate(n=Count("pk")).values("n")[:1]), Value(0)
    )


def live_item_reservations(now, *, exclude_assignment: int | None = None):
    """Subquery: unexpired crowd reservations holding a slot on the outer item."""
    qs = Assignment.objects.filter(
        item=OuterRef("pk"), status=RESERVED, is_gold=False, reserved_until__gt=now
    )
    if exclude_assignment is not None:
        qs = qs.exclude(pk=exclude_assignment)
    return Coalesce(Subquery(qs.order_by().values("item").annotate(n=Count("pk")).values("n")[:1]), Value(0))


def _response_count():
    counted = Response.objects.filter(item=OuterRef("pk")).order_by().values("item").annotate(n=Count("pk"))
    return Coalesce(Subquery(counted.values("n")[:1]), Value(0))


def rankable_items(*, project: Project, annotator: Annotator):
    """Live items with 3 to 9 responses never given to this annotator (any status), gold or not."""
    return (
        Item.objects.filter(project=project, deleted_at__isnull=True)
        .alias(n_responses=_response_count())
        .filter(n_responses__gte=MIN_RESPONSES, n_responses__lte=MAX_RESPONSES)
        .filter(~Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator)))
    )


def _gold_items():
    """Whether the outer item is a gold ranking item: one of its pairs has gold."""
    return Exists(Gold.objects.filter(comparison__item=OuterRef("pk")))


def available_ranking_crowd(*, project: Project, annotator: Annotator, now=None):
    """Items this annotator could be given to rank from the crowd pool (not gold, not full)."""
    now = now or timezone.now()
    return (
        rankable_items(project=project, annotator=annotator)
        .filter(~_gold_items())
        .alias(crowd=crowd_rankings(), held=live_item_reservations(now))
        .filter(crowd__lt=Value(project.overlap_k) - F("held"))
    )


def has_free_item_slot(*, item_id: int, project: Project, exclude_assignment: int | None = None) -> bool:
    """Fresh count (call with the item row locked): crowd rankings + live reservations < k."""
    return (
        Item.objects.filter(pk=item_id)
        .alias(
            crowd=crowd_rankings(),
            held=live_item_reservations(timezone.now(), exclude_assignment=exclude_assignment),
        )
        .filter(crowd__lt=Value(project.overlap_k) - F("held"))
        .exists()
    )


def _claim_ranking(project: Project, annotator: Annotator, now) -> Assignment | None:
    """The pair claim's policy on items: gold at the project's share, else the item with the fewest crowd
    rankings (then at random), locked with SKIP LOCKED and recounted in a new statement before reserving."""
    if _wants_gold(project, annotator):
        picked = (
            rankable_items(project=project, annotator=annotator)
            .filter(_gold_items())
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("?")
            .first()
        )
        if picked is not None:
            return _reserve_item(project, annotator, picked, gold=True, now=now)
    tried: list[int] = []
    for _ in range(_MAX_TRIES):
        picked = (
            available_ranking_crowd(project=project, annotator=annotator, now=now)
            .exclude(pk__in=tried)
            .annotate(queue_crowd=crowd_rankings())
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("queue_crowd", "?")
            .first()
        )
        if picked is None:
            return None
        if has_free_item_slot(item_id=picked.pk, project=project):
            return _reserve_item(project, annotator, picked, gold=False, now=now)
        tried.append(picked.pk)  # filled by another claimer between our snapshot and our lock
    return None


def _reserve_item(project: Project, annotator: Annotator, item: Item, *, gold: bool, now) -> Assignment:
    """Reserve `item` with its responses in a fresh random order, which the page shows and the ranking keeps."""
    order = list(Response.objects.filter(item=item).values_list("pk", flat=True))
    random.shuffle(order)
    return _reserve(project, annotator, gold=gold, now=now, item=item, display_order=order)


def remaining_rankings_for(*, project: Project, annotator: Annotator) -> int:
    """How many crowd items this annotator could still be given to rank (progress display)."""
    return available_ranking_crowd(project=project, annotator=annotator).count()
