"""The project dashboard's figures: computed in the background, cached, pushed to open pages.

Writers call `mark_dashboard_dirty(project_id)` after a judgment commits. That schedules one recompute
(Celery, queue `cpu`) per project at most every `DEBOUNCE_SECONDS`: a cache key marks "a recompute is
scheduled", and the task clears it when it starts, so writes during a recompute schedule exactly one more.
The page only reads the cached figures. Everything here is best-effort (DESIGN.md "How it runs"): a cache
or broker failure is logged and counted, never raised into the write that triggered it. The cache holds
nothing that cannot be recomputed from PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import numpy as np
from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotate.models import Assignment, Comparison, Judgment
from infra.best_effort import BROKER, CHANNELS, DOWN, cache_call, guarded
from insights import charts
from insights.agreement import load_crowd, project_figures
from projects.models import Annotator, AuditEvent, Membership, Project

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 5.0
SCHEDULE_TTL = 120  # a scheduled mark outlives a lost task by at most this long
THROUGHPUT_DAYS = 30
failures = {"schedule": 0, "notify": 0}


def figures_key(project_id: int) -> str:
    return f"dashboard:figures:{project_id}"


def scheduled_key(project_id: int) -> str:
    return f"dashboard:scheduled:{project_id}"


def computed_key(project_id: int) -> str:
    return f"dashboard:computed:{project_id}"


def group_name(project_id: int) -> str:
    return f"dashboard.{project_id}"


# --- computing --------------------------------------------------------------------------------------


def _progress(project: Project, data) -> dict[str, Any]:
    live = Comparison.objects.filter(project=project, deleted_at__isnull=True, item__deleted_at__isnull=True)
    gold = live.filter(gold__isnull=False).count()
    wanted = dict(live.filter(gold__isnull=True).values_list("id", "extra_k"))
    have = np.bincount(data.unit[data.crowd], minlength=data.n_units)
    per_comparison = dict(zip(data.unit_ids, have.tolist(), strict=True))
    k = project.overlap_k
    complete = sum(1 for cid, extra in wanted.items() if per_comparison.get(cid, 0) >= k + extra)
    started = sum(1 for cid in wanted if per_comparison.get(cid, 0) > 0)
    judgments = Judgment.objects.filter(project=project)
    return {
        "comparisons": len(wanted),
        "gold_comparisons": gold,
        "complete": complete,
        "started": started,
        "complete_share": complete / len(wanted) if wanted else None,
        "crowd_judgments": int(data.crowd.sum()),
        "gold_judgments": int(data.on_gold.sum()),
        "source_labels": judgments.filter(is_source=True).count(),
        "skipped": Assignment.objects.filter(project=project, status=Assignment.Status.SKIPPED).count(),
        "annotators": Annotator.objects.filter(project=project, kind=Annotator.Kind.CROWD).count(),
        "flagged": Annotator.objects.filter(project=project, flagged=True).count(),
        "k": k,
    }


def _throughput(project: Project) -> list[tuple[str, int]]:
    today = timezone.now().date()
    start = today - dt.timedelta(days=THROUGHPUT_DAYS - 1)
    per_day = dict(
        Judgment.objects.filter(project=project, is_source=False, created_at__date__gte=start)
        .annotate(day=TruncDate("created_at"))
        .order_by()
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [
        ((start + dt.timedelta(days=i)).isoformat(), per_day.get(start + dt.timedelta(days=i), 0))
        for i in range(THROUGHPUT_DAYS)
    ]


def _charts(agreement: dict[str, Any], throughput: list[tuple[str, int]]) -> dict[str, str]:
    rows = []
    for name, q in agreement["questions"].items():
        if q["alpha_nominal"] is not None or not name.startswith("harm:"):
            rows.append((name, q["alpha_nominal"], q["ci"]["alpha_nominal"]))
        if q["alpha_ordinal"] is not None or q["alpha_interval"] is not None:
            for level in ("ordinal", "interval"):
                metric = f"alpha_{level}"
                rows.append((f"{name} ({level})", q[metric], q["ci"][metric]))
    pairs = [p for p in agreement["pairs"] if p["n"]]
    names = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    index = {n: i for i, n in enumerate(names)}
    cells = {tuple(sorted((index[p["a"]], index[p["b"]]))): (p["cohen_kappa"], p["n"]) for p in pairs}
    return {
        "throughput": str(
            charts.bar_chart([(d[5:], float(n)) for d, n in throughput], label="Crowd judgments per day")
        ),
        "alpha": str(charts.interval_chart(rows, label="Krippendorff's alpha with 95% intervals")),
        "kappa": str(charts.heat_map(names, cells, label="Cohen's kappa per annotator pair"))
        if names
        else "",
    }


def compute_dashboard(project: Project) -> dict[str, Any]:
    """Every figure the dashboard shows, ready to render (charts as SVG strings)."""
    started = time.perf_counter()
    data = load_crowd(project)
    agreement = project_figures(project, data=data)
    throughput = _throughput(project)
    now = timezone.now()
    questions = list(agreement["questions"].items())
    return {
        "computed_at": now.isoformat(),
        "computed_label": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "compute_seconds": time.perf_counter() - started,
        "progress": _progress(project, data),
        "throughput": throughput,
        "agreement": agreement,
        # The table's two groups of rows, in the order of `agreement["questions"]` (the same objects).
        "question_rows": {
            "main": [(name, q) for name, q in questions if not name.startswith("harm:")],
            "harm": [(name, q) for name, q in questions if name.startswith("harm:")],
        },
        "charts": _charts(agreement, throughput),
    }


def recompute_dashboard(project_id: int) -> dict[str, Any] | None:
    """Compute, act on the flags, cache and announce. What the Celery task runs."""
    project = Project.objects.filter(pk=project_id, deleted_at__isnull=True).first()
    if project is None:
        return None
    _cache_call(cache.delete, scheduled_key(project_id))
    figures = compute_dashboard(project)
    changed = apply_automatic_flags(project=project, per_annotator=figures["agreement"]["per_annotator"])
    if changed:  # the table shows the flags: recompute the rows cheaply rather than the whole dashboard
        flagged = set(Annotator.objects.filter(project=project, flagged=True).values_list("id", flat=True))
        paused = _paused_by_annotator(project)
        for row in figures["agreement"]["per_annotator"]:
            row["flagged"] = row["annotator_id"] in flagged
            row["paused_reason"] = paused.get(row["annotator_id"], "")
        figures["progress"]["flagged"] = len(flagged)
    _cache_call(cache.set, figures_key(project_id), figures, None)
    _cache_call(cache.set, computed_key(project_id), time.time(), None)
    notify_dashboard(project_id, figures["computed_at"])
    return figures


def _paused_by_annotator(project: Project) -> dict[int, str]:
    users = dict(Annotator.objects.filter(project=project, user__isnull=False).values_list("user_id", "id"))
    return {
        users[uid]: reason
        for uid, reason in Membership.objects.filter(project=project, user_id__in=users)
        .exclude(paused_reason="")
        .values_list("user_id", "paused_reason")
    }


def cached_dashboard(project: Project) -> dict[str, Any] | None:
    return _cache_call(cache.get, figures_key(project.pk))


# --- scheduling -------------------------------------------------------------------------------------


def _cache_call(fn, *args):
    """A best-effort cache call (infra/best_effort.py: one warning an interval while Redis is down)."""
    value = cache_call(f"dashboard cache {getattr(fn, '__name__', fn)}", fn, *args)
    if value is DOWN:
        failures["schedule"] += 1
        return None
    return value


@shared_task(name="insights.tasks.recompute_dashboard", ignore_result=True)
def recompute_dashboard_task(project_id: int) -> None:
    recompute_dashboard(project_id)


def request_recompute(project_id: int) -> bool:
    """Schedule a recompute unless one is already scheduled; True when this call scheduled it. Best-effort:
    with the cache or the broker down nothing is scheduled (one warning an interval, infra/best_effort.py)."""
    added = cache_call("dashboard recompute schedule", cache.add, scheduled_key(project_id), 1, SCHEDULE_TTL)
    if added is DOWN:
        failures["schedule"] += 1
        return False
    if not added:
        return False
    last = cache_call("dashboard recompute schedule", cache.get, computed_key(project_id), default=None)
    wait = 1.0 if last is None else max(1.0, last + DEBOUNCE_SECONDS - time.time())
    what = f"dashboard recompute of project {project_id}"
    if not guarded(BROKER, what, recompute_dashboard_task.apply_async, (project_id,), countdown=wait):
        failures["schedule"] += 1
        return False
    return True


def on_judgments_changed(sender, project_id: int, **kwargs) -> None:
    """Receiver of `annotate.signals.judgments_changed` (connected in InsightsConfig.ready)."""
    mark_dashboard_dirty(project_id)


def mark_dashboard_dirty(project_id: int) -> None:
    """Call after a judgment (or anything the dashboard shows) is written: after commit, schedule a
    debounced background recompute. Safe inside or outside a transaction."""
    transaction.on_commit(lambda: request_recompute(project_id))


def notify_dashboard(project_id: int, computed_at: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "dashboard.updated", "computed_at": computed_at}
    if not guarded(
        CHANNELS, "dashboard announcement", async_to_sync(layer.group_send), group_name(project_id), message
    ):
        failures["notify"] += 1  # best-effort: pages fall back to polling


# --- acting on the figures ----------------------------------------------------------------------------


def _researcher_decided(annotator_id: int, actions: tuple[str, ...]) -> bool:
    return AuditEvent.objects.filter(
        action__in=actions, target_type="annotator", target_id=str(annotator_id)
    ).exists()


@transaction.atomic
def apply_automatic_flags(*, project: Project, per_annotator: list[dict[str, Any]]) -> list[int]:
    """Flag annotators the figures mark (too fast, low gold accuracy) and pause those below the project's
    gold-accuracy threshold. Automation never overrides a researcher: an annotator whose flag a researcher
    set or cleared is not flagged again, one a researcher unpaused is not paused again.
    Returns the ids of the annotators changed."""
    changed = []
    threshold = project.auto_pause_gold_threshold
    for row in per_annotator:
        aid = row["annotator_id"]
        reasons = [r for r in ("too_fast", "low_gold_accuracy") if row.get(r)]
        if (
            reasons
            and not row.get("flagged")
            and not _researcher_decided(aid, ("annotator.flag",))
            and Annotator.objects.filter(pk=aid, flagged=False).update(flagged=True)
        ):
            AuditEvent.objects.create(
                action="annotator.auto_flagged",
                project=project,
                target_type="annotator",
                target_id=str(aid),
                data={"reasons": reasons, "annotator": row["annotator"]},
            )
            changed.append(aid)
        accuracy = row.get("gold_accuracy")
        if (
            threshold is not None
            and accuracy is not None
            and row.get("gold_answers", 0) >= project.auto_pause_min_gold
            and accuracy < threshold
        ):
            user_id = Annotator.objects.filter(pk=aid).values_list("user_id", flat=True).first()
            if user_id is None or _researcher_decided(aid, ("annotator.unpaused",)):
                continue
            reason = f"Gold accuracy {accuracy:.0%} is below the project's {threshold:.0%} (automatic pause)."
            if Membership.objects.filter(project=project, user_id=user_id, paused_reason="").update(
                paused_reason=reason
            ):
                AuditEvent.objects.create(
                    action="annotator.auto_paused",
                    project=project,
                    target_type="annotator",
                    target_id=str(aid),
                    data={"gold_accuracy": accuracy, "threshold": threshold, "annotator": row["annotator"]},
                )
                changed.append(aid)
    return changed


@transaction.atomic
def annotator_set_flagged(*, annotator: Annotator, flagged: bool, user, reason: str = "") -> Annotator:
    """A researcher flags or clears an annotator (flagged annotators can be left out of snapshots)."""
    Annotator.objects.filter(pk=annotator.pk).update(flagged=flagged)
    annotator.flagged = flagged
    AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username(),
        action="annotator.flag",
        project=annotator.project,
        target_type="annotator",
        target_id=str(annotator.pk),
        data={"flagged": flagged, "reason": reason, "annotator": annotator.name},
    )
    mark_dashboard_dirty(annotator.project_id)
    return annotator


@transaction.atomic
def annotator_unpause(*, annotator: Annotator, user) -> bool:
    """Clear a paused annotator's pause; True when there was one."""
    if annotator.user_id is None:
        return False
    cleared = Membership.objects.filter(project=annotator.project, user_id=annotator.user_id).exclude(
        paused_reason=""
    )
    if not cleared.update(paused_reason=""):
        return False
    AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username(),
        action="annotator.unpaused",
        project=annotator.project,
        target_type="annotator",
        target_id=str(annotator.pk),
        data={"annotator": annotator.name},
    )
    mark_dashboard_dirty(annotator.project_id)
    return True
