"""Researcher pages: the project dashboard, an annotator's page, the comparison browser, adjudication.

Researchers and admins only: annotators and outsiders get 404, anonymous users the login page.
The dashboard reads cached figures (`insights.dashboard`); it never computes them in the request.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from annotate import model_scores
from annotate.models import (
    Assignment,
    Axis,
    Choice,
    Comparison,
    Gold,
    Judgment,
    JudgmentRevision,
)
from insights import charts
from insights.adjudication import AdjudicationError, adjudication_set, comparisons_request_more
from insights.consensus import GoldLabel, Vote, decide
from insights.dashboard import (
    annotator_set_flagged,
    annotator_unpause,
    cached_dashboard,
    request_recompute,
)
from insights.models import Adjudication
from projects.access import get_project_for_user
from projects.models import Annotator, Membership, Project

RESEARCHER_ROLES = ("admin", "researcher")
PAGE_SIZE = 50


def _get_project_for_researcher(request: HttpRequest, slug: str) -> Project:
    project, _ = get_project_for_user(request.user, slug, roles=RESEARCHER_ROLES)
    return project


def _get_annotator_for_researcher(request: HttpRequest, slug: str, annotator_id: int) -> Annotator:
    project = _get_project_for_researcher(request, slug)
    annotator = Annotator.objects.filter(project=project, pk=annotator_id).select_related("project").first()
    if annotator is None:
        raise Http404("No such annotator")
    return annotator


def _get_comparison_for_researcher(request: HttpRequest, slug: str, comparison_id: int) -> Comparison:
    project = _get_project_for_researcher(request, slug)
    comparison = (
        Comparison.objects.filter(project=project, pk=comparison_id, deleted_at__isnull=True)
        .select_related("item", "response_a", "response_b", "project")
        .first()
    )
    if comparison is None:
        raise Http404("No such comparison")
    return comparison


# --- dashboard ----------------------------------------------------------------------------------------


def _live_mode() -> str:
    return "ws" if settings.CROSS_PROCESS_CHANNELS else "poll"


@login_required
@vary_on_headers("HX-Request")
@require_safe
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_researcher(request, slug)
    figures = cached_dashboard(project)
    if figures is None:
        request_recompute(project.pk)
    context = {"project": project, "figures": figures, "live": _live_mode()}
    template = "insights/dashboard.html#figures" if request.htmx else "insights/dashboard.html"
    return render(request, template, context)


@login_required
@require_POST
def dashboard_recompute(request: HttpRequest, slug: str) -> HttpResponse:
    """Ask for fresh figures now (e.g. after an import); still debounced and in the background."""
    project = _get_project_for_researcher(request, slug)
    if request_recompute(project.pk):
        messages.success(request, "The figures are being recomputed; the page updates when they are ready.")
    else:
        messages.info(request, "A recompute is already on its way.")
    return redirect("dashboard", slug=slug)


# --- annotators -------------------------------------------------------------------------------------


@login_required
@require_safe
def annotator_detail(request: HttpRequest, slug: str, annotator_id: int) -> HttpResponse:
    annotator = _get_annotator_for_researcher(request, slug, annotator_id)
    project = annotator.project
    figures = cached_dashboard(project)
    row = None
    pairs = []
    if figures is not None:
        row = next(
            (r for r in figures["agreement"]["per_annotator"] if r["annotator_id"] == annotator.pk), None
        )
        pairs = sorted(
            (
                {
                    "other": p["b"] if p["a"] == annotator.name else p["a"],
                    "n": p["n"],
                    "kappa": p["cohen_kappa"],
                    "weighted_n": p["weighted_n"],
                    "weighted_kappa": p["weighted_kappa"],
                }
                for p in figures["agreement"]["pairs"]
                if annotator.name in (p["a"], p["b"])
            ),
            key=lambda p: (p["kappa"] is None, p["kappa"] or 0),
        )
    judgments = Judgment.objects.filter(project=project, annotator=annotator)
    times = np.array(
        [t for t in judgments.exclude(time_spent_ms=None).values_list("time_spent_ms", flat=True)],
        dtype=float,
    )
    time_chart = None
    if times.size:
        seconds = times / 1000.0
        edges = np.linspace(0, max(float(np.quantile(seconds, 0.98)), 1.0), 21)
        counts, edges = np.histogram(np.clip(seconds, 0, edges[-1]), bins=edges)
        time_chart = charts.histogram(counts.tolist(), edges.tolist(), label="Seconds per judgment")
    gold = (
        JudgmentRevision.objects.filter(
            number=1, judgment__annotator=annotator, judgment__comparison__gold__isnull=False
        )
        .select_related("judgment__comparison__gold")
        .order_by("-created_at")[:50]
    )
    membership = (
        Membership.objects.filter(project=project, user_id=annotator.user_id).first()
        if annotator.user_id
        else None
    )
    recent = judgments.select_related("comparison").order_by("-updated_at")[:25]
    return render(
        request,
        "insights/annotator.html",
        {
            "project": project,
            "annotator": annotator,
            "row": row,
            "pairs": pairs,
            "time_chart": time_chart,
            "gold": gold,
            "recent": recent,
            "membership": membership,
            "judgment_count": judgments.count(),
        },
    )


@login_required
@require_POST
def annotator_flag(request: HttpRequest, slug: str, annotator_id: int) -> HttpResponse:
    annotator = _get_annotator_for_researcher(request, slug, annotator_id)
    flagged = request.POST.get("flagged") == "1"
    annotator_set_flagged(
        annotator=annotator, flagged=flagged, user=request.user, reason=request.POST.get("reason", "")
    )
    messages.success(request, f"{annotator.name} is {'flagged' if flagged else 'no longer flagged'}.")
    return redirect("annotator_detail", slug=slug, annotator_id=annotator.pk)


@login_required
@require_POST
def annotator_unpause_view(request: HttpRequest, slug: str, annotator_id: int) -> HttpResponse:
    annotator = _get_annotator_for_researcher(request, slug, annotator_id)
    if annotator_unpause(annotator=annotator, user=request.user):
        messages.success(request, f"{annotator.name} may label again.")
    return redirect("annotator_detail", slug=slug, annotator_id=annotator.pk)


# --- comparison browser -------------------------------------------------------------------------------


def _vote_count(choice: str):
    counted = (
        Judgment.objects.filter(comparison=OuterRef("pk"), is_source=False, choice=choice)
        .order_by()
        .values("comparison")
        .annotate(n=Count("id"))
        .values("n")[:1]
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _active_score(side: str):
    """The active reward model's score of one side, from whichever app registered scores (`model_scores`)."""
    return model_scores.active_score(OuterRef(f"response_{side}_id"))


def browse_comparisons(project: Project, params) -> tuple[object, dict[str, str]]:
    """The project's live comparisons filtered by `params` (a QueryDict): q, annotator, agreement, model,
    gold, skipped, adjudicated. Returns the queryset and the filters applied."""
    qs = (
        Comparison.objects.filter(project=project, deleted_at__isnull=True, item__deleted_at__isnull=True)
        .select_related("item", "response_a", "response_b")
        .annotate(
            votes_a=_vote_count("a"),
            votes_tie=_vote_count("tie"),
            votes_b=_vote_count("b"),
            score_a=_active_score("a"),
            score_b=_active_score("b"),
            has_gold=Exists(Gold.objects.filter(comparison=OuterRef("pk"))),
            has_adjudication=Exists(Adjudication.objects.filter(comparison=OuterRef("pk"))),
        )
    )
    applied: dict[str, str] = {}
    q = params.get("q", "").strip()
    if q:
        qs = qs.filter(
            Q(item__prompt__icontains=q) | Q(response_a__text__icontains=q) | Q(response_b__text__icontains=q)
        )
        applied["q"] = q
    annotator = params.get("annotator", "")
    if annotator.isdigit():
        qs = qs.filter(judgments__annotator_id=int(annotator))
        applied["annotator"] = annotator
    agreement = params.get("agreement", "")
    if agreement == "unanimous":
        qs = qs.filter(Q(votes_a=0, votes_b__gte=2) | Q(votes_b=0, votes_a__gte=2))
    elif agreement == "disagree":
        qs = qs.filter(votes_a__gte=1, votes_b__gte=1)
    elif agreement == "no_consensus":
        qs = qs.filter(votes_a=F("votes_b"))
    if agreement in ("unanimous", "disagree", "no_consensus"):
        applied["agreement"] = agreement
    if params.get("model") == "disagree":
        qs = qs.filter(
            Q(score_b__gt=F("score_a"), votes_a__gt=F("votes_b"))
            | Q(score_a__gt=F("score_b"), votes_b__gt=F("votes_a"))
        )
        applied["model"] = "disagree"
    gold = params.get("gold", "")
    if gold in ("yes", "no"):
        qs = qs.filter(gold__isnull=gold == "no")
        applied["gold"] = gold
    if params.get("skipped") == "yes":
        qs = qs.filter(assignments__status=Assignment.Status.SKIPPED)
        applied["skipped"] = "yes"
    adjudicated = params.get("adjudicated", "")
    if adjudicated in ("yes", "no"):
        qs = qs.filter(adjudications__isnull=adjudicated == "no")
        applied["adjudicated"] = adjudicated
    return qs.distinct().order_by("pk"), applied


@login_required
@require_safe
def comparison_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_researcher(request, slug)
    qs, applied = browse_comparisons(project, request.GET)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    for c in page:
        c.model_pref = c.score_b - c.score_a if c.score_a is not None and c.score_b is not None else None
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "insights/comparisons.html",
        {
            "project": project,
            "page": page,
            "applied": applied,
            "params": request.GET,
            "query": query.urlencode(),
            "annotators": Annotator.objects.filter(project=project).order_by("name"),
        },
    )


def _consensus_rows(comparison: Comparison, judgments) -> list[dict]:
    votes = [
        Vote(j.preference, j.choice, j.helpfulness, j.harmlessness, j.a_safe, j.b_safe, j.is_source)
        for j in judgments
        if not j.is_gold
    ]
    gold = getattr(comparison, "gold", None)
    label = (
        GoldLabel(gold.choice, gold.helpfulness, gold.harmlessness, gold.a_safe, gold.b_safe)
        if gold
        else None
    )
    adjudications = {a.axis: a.choice for a in comparison.adjudications.all()}
    rows = []
    for axis in Axis.values:
        row = decide(votes, axis=axis, gold=label, adjudications=adjudications)
        rows.append({"axis": axis, "row": row})
    return rows


@login_required
@require_safe
def comparison_detail(request: HttpRequest, slug: str, comparison_id: int) -> HttpResponse:
    comparison = _get_comparison_for_researcher(request, slug, comparison_id)
    judgments = list(
        comparison.judgments.select_related("annotator").prefetch_related(
            Prefetch(
                "revisions",
                queryset=JudgmentRevision.objects.order_by("number").prefetch_related("criterion_answers"),
            )
        )
    )
    judgments.sort(key=lambda j: (j.is_source, j.annotator.name))
    scores = {
        side: model_scores.scores_of(response_id)
        for side, response_id in (("a", comparison.response_a_id), ("b", comparison.response_b_id))
    }
    active = {
        side: next((s for s in rows if s.is_active and s.kind == "reward"), None)
        for side, rows in scores.items()
    }
    model_pref = active["b"].value - active["a"].value if active["a"] and active["b"] else None
    queue = [int(i) for i in request.GET.get("queue", "").split(",") if i.isdigit()]
    position = queue.index(comparison.pk) if comparison.pk in queue else None
    return render(
        request,
        "insights/comparison_detail.html",
        {
            "project": comparison.project,
            "comparison": comparison,
            "judgments": judgments,
            "skips": comparison.assignments.filter(status=Assignment.Status.SKIPPED).select_related(
                "annotator"
            ),
            "sides": [("a", comparison.response_a, scores["a"]), ("b", comparison.response_b, scores["b"])],
            "model_pref": model_pref,
            "consensus": _consensus_rows(comparison, judgments),
            "adjudications": {a.axis: a for a in comparison.adjudications.select_related("decided_by")},
            "axes": Axis.choices,
            "choices": Choice.choices,
            "queue": ",".join(map(str, queue)),
            "position": position,
            "queue_len": len(queue),
            "next_id": queue[position + 1] if position is not None and position + 1 < len(queue) else None,
            "prev_id": queue[position - 1] if position else None,
        },
    )


@login_required
@require_POST
def comparison_adjudicate(request: HttpRequest, slug: str, comparison_id: int) -> HttpResponse:
    comparison = _get_comparison_for_researcher(request, slug, comparison_id)
    queue = request.POST.get("queue", "")
    try:
        adjudication_set(
            comparison=comparison,
            axis=request.POST.get("axis", ""),
            choice=request.POST.get("choice", ""),
            reason=request.POST.get("reason", ""),
            user=request.user,
        )
    except AdjudicationError as exc:
        messages.error(request, f"Not saved: {exc}.")
        url = reverse("comparison_detail", args=[slug, comparison.pk])
        return redirect(f"{url}?queue={queue}" if queue else url)
    messages.success(
        request, f"Comparison {comparison.pk}: {request.POST['axis']} set to {request.POST['choice']}."
    )
    ids = [int(i) for i in queue.split(",") if i.isdigit()]
    if request.POST.get("next") and comparison.pk in ids and ids.index(comparison.pk) + 1 < len(ids):
        nxt = ids[ids.index(comparison.pk) + 1]
        return redirect(f"{reverse('comparison_detail', args=[slug, nxt])}?queue={queue}")
    url = reverse("comparison_detail", args=[slug, comparison.pk])
    return redirect(f"{url}?queue={queue}" if queue else url)


def _selected_ids(request: HttpRequest) -> list[int]:
    raw = request.POST.getlist("ids") or request.GET.getlist("ids")
    out = []
    for value in raw:
        out.extend(int(p) for p in value.split(",") if p.strip().isdigit())
    return out


@login_required
@require_POST
def comparisons_more(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_researcher(request, slug)
    ids = _selected_ids(request)
    try:
        extra = int(request.POST.get("extra", "1"))
        raised = comparisons_request_more(project=project, comparison_ids=ids, extra=extra, user=request.user)
    except (ValueError, AdjudicationError) as exc:
        messages.error(request, f"Nothing changed: {exc}.")
    else:
        messages.success(request, f"Asked for {extra} more judgment(s) on {raised} comparison(s).")
    back = request.POST.get("back", "")
    return redirect(
        back
        if back.startswith("/") and not back.startswith("//")
        else reverse("comparison_list", args=[slug])
    )


@login_required
@require_safe
def adjudicate(request: HttpRequest, slug: str) -> HttpResponse:
    """Walk through the selected comparisons one by one (the queue travels in the URL)."""
    project = _get_project_for_researcher(request, slug)
    ids = list(
        Comparison.objects.filter(project=project, pk__in=_selected_ids(request), deleted_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not ids:
        pending = (
            Comparison.objects.filter(project=project, deleted_at__isnull=True, gold__isnull=True)
            .filter(adjudications__isnull=True)
            .annotate(a=_vote_count("a"), b=_vote_count("b"))
            .filter(a__gte=1, b__gte=1, a=F("b"))
            .order_by("pk")
            .values_list("pk", flat=True)[:200]
        )
        return render(request, "insights/adjudicate.html", {"project": project, "pending": list(pending)})
    queue = ",".join(map(str, ids))
    return redirect(f"{reverse('comparison_detail', args=[slug, ids[0]])}?queue={queue}")
