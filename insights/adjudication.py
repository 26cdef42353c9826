"""Acting on disagreement: adjudicate a comparison (a researcher's final label per axis), or send
comparisons back for more judgments. Adjudications override the vote in consensus and export
(`insights.consensus`)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F

from annotate.models import Axis, Choice, Comparison
from insights.dashboard import mark_dashboard_dirty
from insights.models import Adjudication
from projects.models import AuditEvent, Project

MAX_EXTRA_K = 20


class AdjudicationError(ValueError):
    pass


def _actor(user) -> dict:
    return {"actor": user, "actor_name": user.get_username() if user is not None else ""}


@transaction.atomic
def adjudication_set(*, comparison: Comparison, axis: str, choice: str, reason: str, user) -> Adjudication:
    """Set (or replace) the final label of `comparison` on `axis`, recorded with who and why."""
    if axis not in Axis.values:
        raise AdjudicationError(f"axis must be one of {', '.join(Axis.values)}, not {axis!r}")
    if choice not in Choice.values:
        raise AdjudicationError(f"choice must be one of {', '.join(Choice.values)}, not {choice!r}")
    reason = (reason or "").strip()
    if not reason:
        raise AdjudicationError("reason: say why this label is right")
    previous = (
        Adjudication.objects.select_for_update()
        .filter(comparison=comparison, axis=axis)
        .values_list("choice", flat=True)
        .first()
    )
    adjudication, _ = Adjudication.objects.update_or_create(
        comparison=comparison, axis=axis, defaults={"choice": choice, "reason": reason, "decided_by": user}
    )
    AuditEvent.objects.create(
        **_actor(user),
        action="adjudication.set",
        project_id=comparison.project_id,
        target_type="comparison",
        target_id=str(comparison.pk),
        data={"axis": axis, "choice": choice, "reason": reason, "previous": previous},
    )
    mark_dashboard_dirty(comparison.project_id)
    return adjudication


@transaction.atomic
def adjudication_clear(*, comparison: Comparison, axis: str, user, reason: str = "") -> bool:
    """Remove the final label of `comparison` on `axis`: the vote decides again."""
    previous = (
        Adjudication.objects.filter(comparison=comparison, axis=axis).values_list("choice", flat=True).first()
    )
    if previous is None:
        return False
    Adjudication.objects.filter(comparison=comparison, axis=axis).delete()
    AuditEvent.objects.create(
        **_actor(user),
        action="adjudication.cleared",
        project_id=comparison.project_id,
        target_type="comparison",
        target_id=str(comparison.pk),
        data={"axis": axis, "previous": previous, "reason": reason},
    )
    mark_dashboard_dirty(comparison.project_id)
    return True


@transaction.atomic
def comparisons_request_more(*, project: Project, comparison_ids: Iterable[int], extra: int = 1, user) -> int:
    """Raise the k of the given comparisons of `project` by `extra`, so the queue serves them again.
    Returns how many comparisons were raised (ids of other projects, gold or deleted ones are ignored)."""
    if not 1 <= extra <= MAX_EXTRA_K:
        raise AdjudicationError(f"extra judgments must lie in 1..{MAX_EXTRA_K}, not {extra}")
    ids = sorted({int(i) for i in comparison_ids})
    qs = Comparison.objects.filter(
        project=project,
        pk__in=ids,
        deleted_at__isnull=True,
        gold__isnull=True,
        extra_k__lte=MAX_EXTRA_K - extra,
    )
    raised = list(qs.values_list("pk", flat=True))
    Comparison.objects.filter(pk__in=raised).update(extra_k=F("extra_k") + extra)
    if raised:
        AuditEvent.objects.create(
            **_actor(user),
            action="comparison.more_judgments",
            project=project,
            target_type="comparison",
            target_id=str(raised[0]) if len(raised) == 1 else f"{len(raised)} comparisons",
            data={"comparisons": raised, "extra": extra},
        )
    return len(raised)
