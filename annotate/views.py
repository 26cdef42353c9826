"""The annotator's workbench: claim, show, draft, submit, skip, revise; plus the small researcher controls.

Every view checks access on the server: project membership (404 for outsiders) and, for an assignment or a
judgment, that it belongs to the requesting user's annotator (404 otherwise).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import orjson
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate import ranking_views
from annotate.assignment import (
    annotator_for,
    claim_next,
    labelling_blocked_reason,
    remaining_for,
    remaining_rankings_for,
)
from annotate.models import Assignment, Draft, Judgment, Ranking, Severity
from annotate.ranking_services import gold_accuracy, revise_ranking, submit_ranking
from annotate.rendering import render_conversation, render_markdown
from annotate.services import (
    SKIP_REASONS,
    AnswerError,
    StaleDraft,
    SubmissionRefused,
    answer_loaders,
    checklist_providers,
    revise_judgment,
    revision_open_until,
    save_draft,
    set_project_paused,
    skip_assignment,
    submit_judgment,
    update_guidelines,
)
from infra.ratelimit import submit_retry_after, too_many_submits
from projects.access import get_project_for_user, member_project
from projects.models import Project, harm_label

LABELLER_ROLES = ("admin", "researcher", "annotator")
RUBRIC_TEMPLATE = "rubrics/checklist.html"
# The 7-point scale as shown: position 1 = left much better … 7 = right much better (−3 … +3 shown-relative).
SCALE = [
    (1, -3, "Left much better"),
    (2, -2, "Left better"),
    (3, -1, "Left slightly better"),
    (4, 0, "About the same"),
    (5, 1, "Right slightly better"),
    (6, 2, "Right better"),
    (7, 3, "Right much better"),
]
SHORTCUTS = [
    ("1–7", "overall preference (1 = left much better, 4 = same, 7 = right much better)"),
    ("q / w / e", "more helpful: left / tie / right"),
    ("a / s / d", "more harmless: left / tie / right"),
    ("z / x", "left response safe / unsafe"),
    ("n / m", "right response safe / unsafe"),
    ("u / i / o", "left severity: minor / moderate / severe"),
    ("j / k / l", "right severity: minor / moderate / severe"),
    ("f / g", "go to left / right harm categories (Tab, Space; Esc back)"),
    ("/", "write the justification (Esc back)"),
    ("r", "reveal blurred responses"),
    ("?", "show / hide the guidelines"),
    ("Enter", "submit (Ctrl+Enter inside the justification)"),
    ("Shift+S", "skip with a reason"),
]


# Errors on these fields are shown beside them; any other (rubric, submission id) in a list under the form.
_SHOWN_FIELDS = {
    "preference",
    "helpfulness",
    "harmlessness",
    "justification",
    *(f"{side}_{f}" for side in ("left", "right") for f in ("safe", "harm_categories", "severity")),
}


def _get_project_for_labeller(request: HttpRequest, slug: str) -> Project:
    """The project if the user may label on it (a member, or an admin), else 404. One query for members."""
    project = member_project(request.user, slug)
    if project is not None:
        return project
    project, _role = get_project_for_user(request.user, slug, LABELLER_ROLES)
    return project


def _get_assignment_for_user(request: HttpRequest, project: Project, assignment_id: int) -> Assignment:
    assignment = (
        Assignment.objects.select_related("comparison", "annotator")
        .filter(pk=assignment_id, project=project, annotator__user=request.user)
        .first()
    )
    if assignment is None:
        raise Http404("No such assignment")
    return assignment


def _get_submitted_for_user(request: HttpRequest, project: Project, model, pk: int, *related: str):
    """The user's own judgment or ranking (`model`) given on the workbench (not imported, not implied by a
    ranking), else 404."""
    found = (
        model.objects.select_related("assignment", "annotator", "project", *related)
        .filter(pk=pk, project=project, annotator__user=request.user, assignment__isnull=False)
        .first()
    )
    if found is None:
        raise Http404(f"No such {model._meta.verbose_name}")
    return found


# The form's own bookkeeping, not answers.
_FORM_ONLY = {"csrfmiddlewaretoken", "submission_id", "draft_version", "draft_tab", "revealed"}


def _answers_from_post(request: HttpRequest) -> dict:
    data: dict = {}
    for key in request.POST:
        if key in _FORM_ONLY:
            continue
        values = request.POST.getlist(key)
        data[key] = values if key.endswith("_harm_categories") or len(values) > 1 else values[0]
    return data


def _rubric_context(comparison, draft: dict | None, errors: dict) -> dict:
    """The checklist for this comparison (project rubric, then item criteria) from the registered providers."""
    criteria = [line for provider in checklist_providers for line in provider(comparison)]
    if not criteria:
        return {}
    try:
        get_template(RUBRIC_TEMPLATE)
    except TemplateDoesNotExist:
        return {}
    answers: dict[str, dict[str, str]] = {"a": {}, "b": {}}
    for name, value in (draft or {}).items():
        if name.startswith(("rubric-a-", "rubric-b-")) and isinstance(value, str):
            answers[name[7]][name[9:]] = value
    return {
        "rubric_template": RUBRIC_TEMPLATE,
        "rubric_criteria": criteria,
        "rubric_answers": answers,
        "rubric_errors": errors,
    }


def _shown_answers(judgment: Judgment) -> dict:
    """A stored judgment's answers as the annotator saw them (left / right), to prefill a revision."""
    left = judgment.assignment.shown_left
    right = "b" if left == "a" else "a"
    to_shown = {left: "left", right: "right", "tie": "tie"}
    data: dict = {"justification": judgment.justification}
    if judgment.preference is not None:
        data["preference"] = str(judgment.preference if left == "a" else -judgment.preference)
    for field in ("helpfulness", "harmlessness"):
        if getattr(judgment, field):
            data[field] = to_shown[getattr(judgment, field)]
    for canon, shown in ((left, "left"), (right, "right")):
        safe = getattr(judgment, f"{canon}_safe")
        if safe is not None:
            data[f"{shown}_safe"] = "safe" if safe else "unsafe"
            data[f"{shown}_harm_categories"] = getattr(judgment, f"{canon}_harm_categories")
            data[f"{shown}_severity"] = getattr(judgment, f"{canon}_severity") or ""
    for load in answer_loaders:  # the rubric checklist's answers, say
        data.update(load(judgment))
    return data


def _progress(project: Project, user, assignment: Assignment | None) -> dict:
    """Done today, and left for this annotator counting the comparison (the item to rank) on screen."""
    annotator = annotator_for(project=project, user=user)
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    current = int(assignment is not None and assignment.status == Assignment.Status.RESERVED)
    if project.task_kind == Project.TaskKind.RANKING:
        done_today = Ranking.objects.filter(annotator=annotator, created_at__gte=start).count()
        return {
            "done_today": done_today,
            "left": remaining_rankings_for(project=project, annotator=annotator) + current,
        }
    done_today = Judgment.objects.filter(annotator=annotator, created_at__gte=start).count()
    return {"done_today": done_today, "left": remaining_for(project=project, annotator=annotator) + current}


def _comparison_context(
    request: HttpRequest,
    project: Project,
    assignment: Assignment | None,
    *,
    errors: dict | None = None,
    answers: dict | None = None,
    feedback: dict | None = None,
    notice: str = "",
    judgment: Judgment | Ranking | None = None,
) -> dict:
    ctx: dict = {
        "project": project,
        "assignment": assignment,
        "errors": errors or {},
        "other_errors": [(k, v) for k, v in (errors or {}).items() if k not in _SHOWN_FIELDS],
        "feedback": feedback,
        "notice": notice,
        "scale": SCALE,
        "shortcuts": SHORTCUTS,
        "severities": Severity.choices,
        "harm_choices": [(value, harm_label(value)) for value in project.harm_categories or []],
        "skip_reasons": SKIP_REASONS,
        "justification_mode": project.justification,
        "guidelines_html": render_markdown(project.guidelines),
        "blocked": labelling_blocked_reason(project=project, user=request.user),
        "progress": _progress(project, request.user, assignment),
        "judgment": judgment,
    }
    if assignment is None:
        return ctx
    draft, draft_version = _draft_for(assignment, answers, judgment)
    ctx.update(
        {
            "draft": draft or {},
            "draft_version": draft_version,
            "submission_id": uuid.uuid4().hex,
            "started_ms": int(timezone.now().timestamp() * 1000),
        }
    )
    if assignment.item_id is not None:
        ctx["turns"] = render_conversation(assignment.item.prompt)
        ctx.update(ranking_views.cards_context(assignment, draft, ctx["errors"]))
        return ctx
    comparison = assignment.comparison
    left, right = (
        (comparison.response_a, comparison.response_b)
        if assignment.shown_left == "a"
        else (comparison.response_b, comparison.response_a)
    )
    left_html, right_html = render_markdown(left.text), render_markdown(right.text)
    ctx.update(
        {
            "turns": render_conversation(comparison.item.prompt),
            "panels": [
                _panel("left", assignment.shown_left, left_html, ctx["errors"], draft),
                _panel(
                    "right", "b" if assignment.shown_left == "a" else "a", right_html, ctx["errors"], draft
                ),
            ],
            **_rubric_context(comparison, draft, ctx["errors"]),
        }
    )
    return ctx


def _draft_for(
    assignment: Assignment, answers: dict | None, judgment: Judgment | Ranking | None
) -> tuple[dict | None, int]:
    """What the form starts from, and the draft version: the stored draft; a submitted judgment's (ranking's)
    answers for a revision; or the answers just refused."""
    if answers is None and judgment is None:
        found = Draft.objects.filter(assignment=assignment).first()
        return (found.data, found.version) if found is not None else (None, 0)
    if answers is None:
        if isinstance(judgment, Ranking):
            return ranking_views.form_fields(judgment), 0
        return _shown_answers(judgment), 0
    version = Draft.objects.filter(assignment=assignment).values_list("version", flat=True).first() or 0
    return answers, version


def _panel(shown: str, side: str, html, errors: dict, draft: dict | None = None) -> dict:
    """One response column: `shown` is left/right on screen, `side` the canonical a/b it holds.

    Errors on the harm categories and severity show inside the unsafe details, which are hidden while the
    answer is "safe": then they show beside the safe / unsafe question instead, so none is ever out of sight."""
    error_cats = errors.get(f"{shown}_harm_categories", "")
    error_sev = errors.get(f"{shown}_severity", "")
    error_safe = errors.get(f"{shown}_safe", "")
    if (draft or {}).get(f"{shown}_safe") == "safe" and (error_cats or error_sev):
        hidden = " ".join(e for e in (error_cats, error_sev) if e)
        error_safe = f"{hidden} (Chosen while it was unsafe: choose Unsafe, clear them, then Safe again.)"
        error_cats = error_sev = ""
    return {
        "shown": shown,
        "side": side,
        "html": html,
        "title": "Left response" if shown == "left" else "Right response",
        "keys": {"safe": "z", "unsafe": "x", "cats": "f"}
        if shown == "left"
        else {"safe": "n", "unsafe": "m", "cats": "g"},
        "severities": [
            (value, label, key)
            for (value, label), key in zip(Severity.choices, "uio" if shown == "left" else "jkl", strict=True)
        ],
        "error_safe": error_safe,
        "error_cats": error_cats,
        "error_sev": error_sev,
    }


def _render_workbench(request: HttpRequest, ctx: dict, status: int = 200) -> HttpResponse:
    template = "annotate/workbench.html#comparison" if request.htmx else "annotate/workbench.html"
    return render(request, template, ctx, status=status)


def _gold_feedback(judgment: Judgment) -> dict | None:
    if not judgment.is_gold or not judgment.project.show_gold_feedback:
        return None
    gold = getattr(judgment.comparison, "gold", None)
    if gold is None:
        return None
    left = judgment.assignment.shown_left
    shown = {left: "left", ("b" if left == "a" else "a"): "right", "tie": "tie"}
    return {
        "expected": shown[gold.choice],
        "given": shown.get(judgment.choice or "", "—"),
        "correct": judgment.choice == gold.choice,
        "explanation": gold.explanation,
    }


@login_required
@require_GET
def workbench(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    assignment = claim_next(project=project, user=request.user)
    return _render_workbench(request, _comparison_context(request, project, assignment))


@login_required
@require_POST
def workbench_submit(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    if (retry_after := submit_retry_after(request.user.pk)) is not None:
        return too_many_submits(retry_after, json=False)
    assignment = _get_assignment_for_user(request, project, assignment_id)
    version = request.POST.get("draft_version")
    submission = {
        "assignment": assignment,
        "user": request.user,
        "submission_id": request.POST.get("submission_id", ""),
        "draft_version": int(version) if version and version.isdigit() else None,
        "draft_tab": request.POST.get("draft_tab", "")[:64],
    }
    try:
        if assignment.item_id is not None:
            answers = ranking_views.answers_from_post(request.POST)
            ranking = submit_ranking(answers=answers, **submission)
            feedback = ranking_views.gold_feedback(ranking, *gold_accuracy(ranking))
        else:
            answers = _answers_from_post(request)
            feedback = _gold_feedback(submit_judgment(answers=answers, **submission))
    except AnswerError as exc:
        if assignment.item_id is not None:  # the form's fields as they were, for the page to show again
            answers = _answers_from_post(request)
        ctx = _comparison_context(request, project, assignment, errors=exc.errors, answers=answers)
        ctx["revealed"] = request.POST.get("revealed") == "1"  # what was revealed stays so
        return _render_workbench(request, ctx, status=200 if request.htmx else 400)
    except StaleDraft:
        ctx = _comparison_context(
            request,
            project,
            assignment,
            notice="This comparison was changed in another tab. Its newer draft is shown; check it and submit.",
        )
        return _render_workbench(request, ctx)
    except SubmissionRefused as exc:
        nxt = claim_next(project=project, user=request.user)
        return _render_workbench(request, _comparison_context(request, project, nxt, notice=str(exc)))
    if not request.htmx:
        return redirect("workbench", slug=project.slug)
    nxt = claim_next(project=project, user=request.user)
    return _render_workbench(request, _comparison_context(request, project, nxt, feedback=feedback))


@login_required
@require_POST
def workbench_draft(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    assignment = _get_assignment_for_user(request, project, assignment_id)
    try:
        body = orjson.loads(request.body or b"{}")
        data, version = body["data"], int(body["version"])
        tab, seq = str(body.get("tab") or "")[:64], int(body.get("seq") or 0)
        if not isinstance(data, dict):
            raise TypeError("data must be an object")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return JsonResponse(
            {"error": f"Send JSON {{'data': {{…}}, 'version': n, 'tab': '…', 'seq': n}}: {exc}"}, status=400
        )
    if len(request.body) > 64 * 1024:
        return JsonResponse({"error": "Draft too large (64 KiB at most)."}, status=400)
    try:
        new_version = save_draft(
            assignment=assignment, user=request.user, data=data, version=version, tab=tab, seq=seq
        )
    except StaleDraft as exc:
        return JsonResponse(
            {"error": "A newer draft was saved in another tab.", "version": exc.current_version}, status=409
        )
    except SubmissionRefused as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    return JsonResponse({"version": new_version})


@login_required
@require_POST
def workbench_skip(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    assignment = _get_assignment_for_user(request, project, assignment_id)
    notice = ""
    try:
        skip_assignment(
            assignment=assignment,
            user=request.user,
            reason=request.POST.get("reason", ""),
            note=request.POST.get("note", ""),
        )
    except AnswerError as exc:
        ctx = _comparison_context(request, project, assignment, errors=exc.errors)
        return _render_workbench(request, ctx, status=200 if request.htmx else 400)
    except SubmissionRefused as exc:
        notice = str(exc)
    if not request.htmx:
        return redirect("workbench", slug=project.slug)
    nxt = claim_next(project=project, user=request.user)
    return _render_workbench(request, _comparison_context(request, project, nxt, notice=notice))


@login_required
@require_GET
def workbench_status(request: HttpRequest, slug: str) -> JsonResponse:
    """Small polled status for when the live socket is down."""
    project = _get_project_for_labeller(request, slug)
    updated = project.guidelines_updated_at
    return JsonResponse(
        {
            "paused": project.paused,
            "blocked": labelling_blocked_reason(project=project, user=request.user),
            "guidelines_version": updated.isoformat() if updated else "",
        }
    )


@login_required
@require_GET
def workbench_guidelines(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    return render(
        request,
        "annotate/workbench_guidelines.html",
        {"project": project, "guidelines_html": render_markdown(project.guidelines)},
    )


@login_required
@require_GET
def workbench_history(request: HttpRequest, slug: str) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    since = timezone.now() - timedelta(hours=project.revision_window_hours)
    judgments = (
        Judgment.objects.filter(
            project=project, annotator__user=request.user, assignment__isnull=False, created_at__gte=since
        )
        .select_related("comparison__item")
        .order_by("-created_at")[:200]
    )
    rankings = (
        Ranking.objects.filter(
            project=project, annotator__user=request.user, assignment__isnull=False, created_at__gte=since
        )
        .select_related("item")
        .order_by("-created_at")[:200]
    )
    return render(
        request,
        "annotate/workbench_history.html",
        {"project": project, "judgments": judgments, "rankings": rankings},
    )


@login_required
@require_http_methods(["GET", "POST"])
def workbench_revise(request: HttpRequest, slug: str, judgment_id: int) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    judgment = _get_submitted_for_user(request, project, Judgment, judgment_id, "comparison")
    return _revise_page(request, project, judgment)


@login_required
@require_http_methods(["GET", "POST"])
def workbench_revise_ranking(request: HttpRequest, slug: str, ranking_id: int) -> HttpResponse:
    project = _get_project_for_labeller(request, slug)
    ranking = _get_submitted_for_user(request, project, Ranking, ranking_id, "assignment__item", "item")
    return _revise_page(request, project, ranking)


def _revise_page(request: HttpRequest, project: Project, record: Judgment | Ranking) -> HttpResponse:
    """Show a submitted judgment or ranking with its answers, and store a revision of it (POST)."""
    assignment = record.assignment
    open_until = revision_open_until(record)
    extra = {"open_until": open_until}
    if isinstance(record, Ranking):
        extra["revise_url"] = reverse("workbench_revise_ranking", args=[project.slug, record.pk])
    else:
        extra["revise_url"] = reverse("workbench_revise", args=[project.slug, record.pk])
    if request.method == "POST":
        form = _answers_from_post(request)
        submission_id = request.POST.get("submission_id", "")
        try:
            if isinstance(record, Ranking):
                answers = ranking_views.answers_from_post(request.POST)
                revise_ranking(
                    ranking=record, user=request.user, answers=answers, submission_id=submission_id
                )
            else:
                revise_judgment(judgment=record, user=request.user, answers=form, submission_id=submission_id)
        except AnswerError as exc:
            ctx = _comparison_context(
                request, project, assignment, errors=exc.errors, answers=form, judgment=record
            )
            return render(request, "annotate/workbench_revise.html", ctx | extra, status=400)
        except SubmissionRefused as exc:
            ctx = _comparison_context(request, project, assignment, judgment=record, notice=str(exc))
            return render(request, "annotate/workbench_revise.html", ctx | extra, status=409)
        return redirect(reverse("workbench_history", args=[project.slug]) + "?revised=1")
    ctx = _comparison_context(request, project, assignment, judgment=record)
    if timezone.now() > open_until:
        ctx["notice"] = "The revision window for this judgment has closed."
    return render(request, "annotate/workbench_revise.html", ctx | extra)


# --- Researcher controls: pause / resume and guidelines -------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def project_controls(request: HttpRequest, slug: str) -> HttpResponse:
    project, _role = get_project_for_user(request.user, slug, ("admin", "researcher"))
    saved = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "pause":
            set_project_paused(project=project, actor=request.user, paused=True)
            saved = "Labelling paused."
        elif action == "resume":
            set_project_paused(project=project, actor=request.user, paused=False)
            saved = "Labelling resumed."
        elif action == "guidelines":
            text = request.POST.get("guidelines", "")
            if len(text) > 100_000:
                return HttpResponse("Guidelines: 100,000 characters at most.", status=400)
            update_guidelines(project=project, actor=request.user, guidelines=text)
            saved = "Guidelines saved."
        else:
            return HttpResponse("Unknown action: use pause, resume or guidelines.", status=400)
    return render(
        request,
        "annotate/workbench_controls.html",
        {"project": project, "saved": saved, "guidelines_html": render_markdown(project.guidelines)},
    )
