"""The labelling API: claim, draft, submit and skip in JSON, for scripts (an API token) and the browser's session.

The workbench's own rules hold, through the same services: one open reservation per annotator, k and the gold
share, idempotent submits (the same `submission_id` returns the same judgment), drafts versioned against other
tabs, the per-user submit limit (429 with Retry-After). A token acts as its user; the user labels as their one
annotator of the project, so an assignment that is not theirs answers 404. Every refusal is JSON.

On a ranking project (`task_kind` "ranking") a claim returns `kind` "ranking" and the item's `responses`
(id and text) in the stored display order, top first; a submit's answers are then a ranking (`tiers` of
response ids, best first; `all_bad`; `safety` by response id: annotate/ranking_services.py) and it answers
with the `ranking`.

Added to `projects.api.api` in `AnnotateConfig.ready()`. Two authentications: `Authorization: Bearer <token>`,
or the browser's session with its CSRF token (django-ninja's `django_auth`).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Router, Schema, Status
from ninja.security import django_auth

from annotate.assignment import claim_next, claim_next_for_member, labelling_blocked_reason
from annotate.models import Assignment, Response
from annotate.ranking_services import submit_ranking
from annotate.services import (
    AnswerError,
    AssignmentNotFound,
    StaleDraft,
    SubmissionRefused,
    save_draft,
    skip_assignment,
    submit_judgment,
    valid_submission_id,
)
from infra.ratelimit import submit_retry_after, too_many_submits
from projects.api import Message, project_for
from projects.api_auth import TokenAuth
from projects.models import Project

router = Router(auth=[TokenAuth(), django_auth], tags=["labelling"])

LABELLERS = ("admin", "researcher", "annotator")
DRAFT_MAX_BYTES = 64 * 1024


class ResponseOut(Schema):
    id: int
    text: str


class AssignmentOut(Schema):
    assignment: int | None
    kind: str | None = None  # "pair" or "ranking"
    reserved_until: str | None = None
    prompt: list[dict[str, Any]] | None = None
    left: str | None = None
    right: str | None = None
    responses: list[ResponseOut] | None = None  # a ranking's, as shown top to bottom
    reason: str | None = None


class SubmitIn(Schema):
    # Missing fields are refused by the service, after the access checks (an outsider learns nothing: 404).
    answers: dict[str, Any] = {}
    submission_id: str = ""
    draft_version: int | None = None


class SubmitOut(Schema):
    judgment: int | None = None
    ranking: int | None = None
    revision_count: int


class AnswerErrors(Schema):
    errors: dict[str, str]


class Conflict(Schema):
    error: str
    version: int | None = None


class DraftIn(Schema):
    data: dict[str, Any]
    version: int


class DraftOut(Schema):
    version: int


class SkipIn(Schema):
    reason: str  # one of annotate.services.SKIP_REASONS (the service names them when it is not)
    note: str = ""


class SkipOut(Schema):
    skipped: int


def _assignment_out(assignment: Assignment) -> dict[str, Any]:
    """What the annotator sees: the prompt and the two responses in the order shown (never the stored A/B), or
    a ranking's responses in their display order."""
    if assignment.item_id is not None:
        texts = dict(Response.objects.filter(item_id=assignment.item_id).values_list("pk", "text"))
        return {
            "assignment": assignment.pk,
            "kind": "ranking",
            "reserved_until": assignment.reserved_until.isoformat() if assignment.reserved_until else None,
            "prompt": assignment.item.prompt,
            "responses": [{"id": rid, "text": texts[rid]} for rid in assignment.display_order],
        }
    comparison = assignment.comparison
    left, right = (
        (comparison.response_a, comparison.response_b)
        if assignment.shown_left == "a"
        else (comparison.response_b, comparison.response_a)
    )
    return {
        "assignment": assignment.pk,
        "kind": "pair",
        "reserved_until": assignment.reserved_until.isoformat() if assignment.reserved_until else None,
        "prompt": comparison.item.prompt,
        "left": left.text,
        "right": right.text,
    }


def _labeller_project(request: HttpRequest, slug: str) -> Project:
    return project_for(request, slug, roles=LABELLERS)


def _own_assignment(request: HttpRequest, slug: str, assignment_id: int) -> Assignment:
    """The user's own assignment on the project, else 404 (for the project first, then the assignment)."""
    project = _labeller_project(request, slug)
    assignment = (
        Assignment.objects.select_related("annotator")
        .filter(pk=assignment_id, project=project, annotator__user=request.user)
        .first()
    )
    if assignment is None:
        raise Http404("No such assignment")
    return assignment


@router.post("/projects/{slug}/claim/", response=AssignmentOut, url_name="labelling_claim")
def claim(request, slug: str):
    """The comparison reserved for you: your open reservation, else a new one; `assignment` is null (with a
    reason) when nothing is left or labelling is paused."""
    claimed = claim_next_for_member(slug=slug, user=request.user)  # the access check in the claim's statement
    if claimed is not None:
        project, assignment = claimed
    else:  # an admin without a membership, a first claim, or a 404
        project = _labeller_project(request, slug)
        assignment = claim_next(project=project, user=request.user)
    if assignment is None:
        reason = labelling_blocked_reason(project=project, user=request.user) or "Nothing left to label."
        return {"assignment": None, "reason": reason}
    return _assignment_out(assignment)


@router.post(
    "/projects/{slug}/assignments/{assignment_id}/submit/",
    response={200: SubmitOut, 400: AnswerErrors | Message, 404: Message, 409: Conflict},
    url_name="labelling_submit",
)
def submit(request, slug: str, assignment_id: int, data: SubmitIn):
    """Submit your answers (the workbench's fields, relative to the stored A/B as in `raw`: `choice` a / b /
    tie, `preference` −3…3 …; on a ranking project `tiers`, `all_bad`, `safety`). The same `submission_id`
    again returns the same judgment (ranking)."""
    # The limit counts the user's submits whatever they name (an outsider's too: 404 or 429 tells them nothing).
    if (retry_after := submit_retry_after(request.user.pk)) is not None:
        return too_many_submits(retry_after, json=True)
    submission = {
        "user": request.user,
        "answers": data.answers,
        "submission_id": data.submission_id,
        "draft_version": data.draft_version,
    }
    if not valid_submission_id(data.submission_id):
        # The service refuses it (400) before it locks anything: the access checks come first.
        _own_assignment(request, slug, assignment_id)
    try:
        try:
            # A member's assignment: the membership check and the project's row come with the assignment's lock.
            judgment = submit_judgment(
                assignment=Assignment(pk=assignment_id), member_slug=slug, **submission
            )
        except AssignmentNotFound:
            # Not a member's own assignment on that project (nothing was written): the general path says
            # which — 404 for the project, an admin labelling without a membership, or 404 for the assignment.
            project = _labeller_project(request, slug)
            if project.task_kind == Project.TaskKind.RANKING:
                ranking = submit_ranking(
                    assignment=_own_assignment(request, slug, assignment_id), **submission
                )
                return {"ranking": ranking.pk, "revision_count": ranking.revision_count}
            judgment = submit_judgment(assignment=Assignment(pk=assignment_id, project=project), **submission)
    except AnswerError as exc:
        return Status(400, {"errors": exc.errors})
    except StaleDraft as exc:
        return Status(409, {"error": str(exc), "version": exc.current_version})
    except AssignmentNotFound as exc:
        raise Http404("No such assignment") from exc
    except SubmissionRefused as exc:
        return Status(409, {"error": str(exc)})
    return {"judgment": judgment.pk, "revision_count": judgment.revision_count}


@router.post(
    "/projects/{slug}/assignments/{assignment_id}/draft/",
    response={200: DraftOut, 400: Message, 404: Message, 409: Conflict},
    url_name="labelling_draft",
)
def draft(request, slug: str, assignment_id: int, data: DraftIn):
    """Save a draft of your answers; `version` is the draft version you started from (0 for none). 409 with
    the current version when a newer draft was saved elsewhere."""
    assignment = _own_assignment(request, slug, assignment_id)
    if len(request.body) > DRAFT_MAX_BYTES:
        return Status(400, {"detail": f"Draft too large ({DRAFT_MAX_BYTES // 1024} KiB at most)."})
    try:
        version = save_draft(assignment=assignment, user=request.user, data=data.data, version=data.version)
    except StaleDraft as exc:
        return Status(409, {"error": "A newer draft was saved elsewhere.", "version": exc.current_version})
    except SubmissionRefused as exc:
        return Status(409, {"error": str(exc)})
    return {"version": version}


@router.post(
    "/projects/{slug}/assignments/{assignment_id}/skip/",
    response={200: SkipOut, 400: AnswerErrors, 404: Message, 409: Conflict},
    url_name="labelling_skip",
)
def skip(request, slug: str, assignment_id: int, data: SkipIn):
    """Give the comparison back with a reason (`other` needs a note); you will not be given it again."""
    assignment = _own_assignment(request, slug, assignment_id)
    try:
        skip_assignment(assignment=assignment, user=request.user, reason=data.reason, note=data.note)
    except AnswerError as exc:
        return Status(400, {"errors": exc.errors})
    except SubmissionRefused as exc:
        return Status(409, {"error": str(exc)})
    return {"skipped": assignment.pk}
