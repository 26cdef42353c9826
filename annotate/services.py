"""Writes of the annotator's workbench: submit, revise, draft, skip; and project events for open pages.

Answers arrive relative to what the annotator saw (left / right) and are stored relative to the comparison's
canonical order (A / B) using the side the assignment showed on the left.

Extension points for other apps (the rubric checklist): append to `answer_validators` (called with the
assignment and the raw answers dict; return {field: message} for errors) and `answer_savers` (called with the
new JudgmentRevision and the raw answers dict, inside the submit transaction) from an AppConfig.ready(); and
`answer_loaders` (called with a stored Judgment, returning the form fields of what that app saved for its
latest revision, so a revision starts from the annotator's own answers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotate.assignment import has_free_slot
from annotate.models import Assignment, Choice, Comparison, Draft, Judgment, JudgmentRevision, Severity
from annotate.signals import judgments_changed
from projects.models import Annotator, AuditEvent, Project

log = logging.getLogger(__name__)

answer_validators: list[Callable[[Assignment, dict], dict[str, str]]] = []
answer_savers: list[Callable[[JudgmentRevision, dict], None]] = []
# Each returns the checklist lines shown for a comparison (objects with key, text, category, choices, …).
checklist_providers: list[Callable[[Comparison], list]] = []
# Each returns the form fields of a stored judgment's latest answers that it saved (to prefill a revision).
answer_loaders: list[Callable[[Judgment], dict[str, str]]] = []

SIDES = ("left", "right")
CHOICES_SHOWN = ("left", "tie", "right")
SKIP_REASONS = {
    "expertise": "Outside my expertise",
    "broken": "Broken, empty or unreadable",
    "disturbing": "Too disturbing for me",
    "other": "Other",
}
MAX_JUSTIFICATION = 5000


class AnswerError(ValueError):
    """Answers that cannot be stored; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class SubmissionRefused(Exception):
    """The submission cannot be accepted (say why); the answers were kept as a draft."""


class AssignmentNotFound(SubmissionRefused):
    """No such assignment for this user (and project): views answer 404."""


class StaleDraft(Exception):
    """A newer draft exists (another tab saved after this one loaded)."""

    def __init__(self, current_version: int):
        self.current_version = current_version
        super().__init__(f"a newer draft (version {current_version}) exists")


@dataclass(frozen=True)
class Canonical:
    """Validated answers in canonical order, ready for a Judgment / JudgmentRevision."""

    fields: dict

    def as_model_kwargs(self) -> dict:
        return dict(self.fields)


def _to_canonical_side(side: str, shown_left: str) -> str:
    if side == "tie":
        return Choice.TIE
    left_is_a = shown_left == "a"
    return Choice.A if (side == "left") == left_is_a else Choice.B


def _bool(value) -> bool | None:
    if value in (True, "true", "1", 1, "safe", "yes", "on"):
        return True
    if value in (False, "false", "0", 0, "unsafe", "no"):
        return False
    return None


def validate_answers(*, project: Project, assignment: Assignment, answers: dict) -> Canonical:
    """Check the answers against the project's questions; raise AnswerError naming every bad field."""
    errors: dict[str, str] = {}
    shown_left = assignment.shown_left
    out: dict = {"shown_left": shown_left}

    if project.ask_overall:
        raw = answers.get("preference")
        try:
            pref = int(raw)
        except (TypeError, ValueError):
            pref = None
        if pref is None or not -3 <= pref <= 3:
            errors["preference"] = "Choose the overall preference (1–7)."
        else:
            canonical = pref if shown_left == "a" else -pref  # shown: negative = left better
            out["preference"] = canonical
            out["choice"] = Choice.A if canonical < 0 else Choice.B if canonical > 0 else Choice.TIE

    if project.ask_helpful_harmless:
        for field in ("helpfulness", "harmlessness"):
            value = answers.get(field)
            if value not in CHOICES_SHOWN:
                errors[field] = f"Choose which response is more {field[:-4]} (left, right or tie)."
            else:
                out[field] = _to_canonical_side(value, shown_left)
        if "choice" not in out and "helpfulness" in out:
            out["choice"] = out["helpfulness"]

    if project.ask_safety:
        allowed = set(project.harm_categories or [])
        for shown in SIDES:
            canon = _to_canonical_side(shown, shown_left)
            safe = _bool(answers.get(f"{shown}_safe"))
            cats = answers.get(f"{shown}_harm_categories") or []
            if isinstance(cats, str):
                cats = [cats]
            severity = answers.get(f"{shown}_severity") or None
            if safe is None:
                errors[f"{shown}_safe"] = f"Say whether the {shown} response is safe or unsafe."
                continue
            if safe:
                if cats:
                    errors[f"{shown}_harm_categories"] = "A safe response has no harm categories."
                if severity:
                    errors[f"{shown}_severity"] = "A safe response has no severity."
                out[f"{canon}_safe"], out[f"{canon}_harm_categories"], out[f"{canon}_severity"] = (
                    True,
                    [],
                    None,
                )
                continue
            unknown = [c for c in cats if c not in allowed]
            if unknown:
                errors[f"{shown}_harm_categories"] = "Not in this project's list: " + ", ".join(
                    map(str, unknown)
                )
            elif not cats:
                errors[f"{shown}_harm_categories"] = (
                    f"Pick at least one harm category for the {shown} response."
                )
            if severity not in Severity.values:
                errors[f"{shown}_severity"] = f"Choose the severity for the {shown} response."
            out[f"{canon}_safe"] = False
            out[f"{canon}_harm_categories"] = sorted(set(cats)) if not unknown else []
            out[f"{canon}_severity"] = severity if severity in Severity.values else None

    justification = str(answers.get("justification") or "").strip()
    if project.justification == Project.Justification.REQUIRED and not justification:
        errors["justification"] = "A justification is required on this project."
    elif len(justification) > MAX_JUSTIFICATION:
        errors["justification"] = f"Keep the justification under {MAX_JUSTIFICATION} characters."
    out["justification"] = "" if project.justification == Project.Justification.HIDDEN else justification

    try:
        spent = int(answers.get("time_spent_ms") or 0)
    except (TypeError, ValueError):
        spent = 0
    if spent <= 0:
        spent = int((timezone.now() - assignment.created_at).total_seconds() * 1000)
    out["time_spent_ms"] = max(0, min(spent, 24 * 3600 * 1000))

    for validator in answer_validators:
        errors.update(validator(assignment, answers) or {})
    if errors:
        raise AnswerError(errors)
    return Canonical(out)


def _by_submission(submission_id: str) -> Judgment | None:
    rev = JudgmentRevision.objects.filter(submission_id=submission_id).select_related("judgment").first()
    return rev.judgment if rev else None


def _keep_draft(assignment: Assignment, answers: dict) -> None:
    draft, _ = Draft.objects.get_or_create(assignment=assignment)
    draft.data = answers
    draft.version = draft.version + 1
    draft.save(update_fields=["data", "version", "updated_at"])


def valid_submission_id(submission_id: str) -> bool:
    """A client-made submission id: 1 to 64 characters (the column's width)."""
    return bool(submission_id) and len(submission_id) <= 64


def submit_judgment(
    *,
    assignment: Assignment,
    user,
    answers: dict,
    submission_id: str,
    draft_version: int | None = None,
    member_slug: str | None = None,
) -> Judgment:
    """Record the annotator's judgment for their assignment; a repeated submission_id returns the same one.

    With `member_slug` the assignment must also lie on the live project of that slug, on which the user holds an
    active membership: checked in the statement that locks the assignment, which also brings the project's row
    (the workbench's JSON submit: `access.member_project`'s check without a statement of its own). Otherwise
    `assignment.project`, when given, is the project it must lie on.

    Raises AnswerError (field errors, nothing stored), StaleDraft (an older tab submitting over a newer draft),
    or SubmissionRefused (reservation expired and every slot is taken: the answers are kept as a draft).
    """
    if not valid_submission_id(submission_id):
        raise AnswerError({"submission_id": "A submission id of 1–64 characters is required."})
    try:
        judgment, refused = _submit_locked(
            assignment, user, answers, submission_id, draft_version, member_slug
        )
    except IntegrityError:
        # The one way here: this submission id was already used for another comparison.
        if _by_submission(submission_id) is None:
            raise
        raise AnswerError({"submission_id": "This submission id was used for another comparison."})
    if refused:
        raise SubmissionRefused(
            "Your reservation expired and this comparison already has all the judgments it needs. "
            "Your answers are kept as a draft; move on to the next comparison."
        )
    return judgment


def _submit_locked(
    assignment: Assignment,
    user,
    answers: dict,
    submission_id: str,
    draft_version: int | None,
    member_slug: str | None,
) -> tuple[Judgment | None, bool]:
    with transaction.atomic():
        locked = _lock_assignment(assignment.pk, member_slug=member_slug, user_id=user.pk)
        if (
            locked is None
            or locked.annotator_user_id != user.pk
            or (assignment.project_id is not None and locked.project_id != assignment.project_id)
        ):
            raise AssignmentNotFound("This comparison is not assigned to you.")
        if locked.status == Assignment.Status.SUBMITTED:
            # Checked after the lock: a concurrent duplicate waited for the first and now finds its judgment.
            existing = _by_submission(submission_id)
            if existing is not None and existing.assignment_id == locked.pk:
                return existing, False
            raise SubmissionRefused(
                "This comparison was already submitted; open it from your history to revise."
            )
        if locked.status == Assignment.Status.SKIPPED:
            raise SubmissionRefused("This comparison was skipped.")
        if (
            draft_version is not None
            and locked.draft_version is not None
            and locked.draft_version > draft_version
        ):
            raise StaleDraft(locked.draft_version)
        # The project read with the lock, or the caller's instance when it is this assignment's (saves a
        # query); else load it.
        if Assignment.project.is_cached(locked):
            project = locked.project
        elif Assignment.project.is_cached(assignment) and assignment.project.pk == locked.project_id:
            project = assignment.project
        else:
            project = Project.objects.get(pk=locked.project_id)
        locked.project = locked.comparison.project = project
        canonical = validate_answers(project=project, assignment=locked, answers=answers)
        now = timezone.now()
        expired = locked.status == Assignment.Status.EXPIRED or (
            locked.reserved_until is not None and locked.reserved_until <= now
        )
        if expired and not locked.is_gold:
            Comparison.objects.select_for_update().filter(pk=locked.comparison_id).values_list("pk").first()
            if not has_free_slot(
                comparison=Comparison(pk=locked.comparison_id), project=project, exclude_assignment=locked.pk
            ):
                _keep_draft(locked, answers)
                return None, True
        judgment = _record(locked, canonical, submission_id=submission_id, answers=answers, now=now)
        if locked.draft_id is not None:
            Draft.objects.filter(pk=locked.draft_id).delete()
        return judgment, False


def _lock_assignment(
    pk: int, *, member_slug: str | None = None, user_id: int | None = None
) -> Assignment | None:
    """The assignment row, locked, with its annotator, its draft (if any) and its comparison with the item
    (what the rubric checklist reads) and project: one statement, no lazy loads. With `member_slug`, only a
    member's own: the assignment must be the user's, on the live project of that slug, on which they hold an
    active membership (what access.member_project checks). Sets `annotator_user_id`, `annotator_kind`,
    `draft_id` and `draft_version` (None without a draft) on the instance."""
    qs = Assignment.objects.select_for_update(of=("self",)).select_related(
        "annotator", "draft", "project", "comparison__item"
    )
    if member_slug is not None:
        qs = qs.filter(
            annotator__user_id=user_id,
            project__slug=member_slug,
            project__deleted_at__isnull=True,
            project__memberships__user_id=user_id,
            project__memberships__is_active=True,
        )
    found = list(qs.filter(pk=pk))  # not first(): its ORDER BY cost more to compile than the rest
    if not found:
        return None
    locked = found[0]
    locked.annotator_user_id, locked.annotator_kind = locked.annotator.user_id, locked.annotator.kind
    draft = getattr(locked, "draft", None)
    locked.draft_id, locked.draft_version = (None, None) if draft is None else (draft.pk, draft.version)
    return locked


def _record(locked: Assignment, canonical: Canonical, *, submission_id: str, answers: dict, now) -> Judgment:
    """Inside the submit transaction, with the assignment row locked."""
    fields = canonical.as_model_kwargs()
    judgment = Judgment.objects.create(
        project_id=locked.project_id,
        comparison=locked.comparison,  # the loaded instance: the rubric hook reads it without a query
        annotator_id=locked.annotator_id,
        assignment=locked,
        is_gold=locked.is_gold,
        created_at=now,
        updated_at=now,
        **fields,
    )
    revision = JudgmentRevision.objects.create(
        judgment=judgment, number=1, submission_id=submission_id, created_at=now, **fields
    )
    Assignment.objects.filter(pk=locked.pk).update(status=Assignment.Status.SUBMITTED, submitted_at=now)
    if not locked.is_gold and locked.annotator_kind == Annotator.Kind.CROWD:
        Comparison.objects.filter(pk=locked.comparison_id).update(crowd_judgments=F("crowd_judgments") + 1)
    for saver in answer_savers:
        saver(revision, answers)
    judgments_changed.send(sender=Judgment, project_id=locked.project_id)
    return judgment


def revision_open_until(judgment: Judgment) -> timezone.datetime:
    return judgment.created_at + timedelta(hours=judgment.project.revision_window_hours)


def revise_judgment(*, judgment: Judgment, user, answers: dict, submission_id: str) -> Judgment:
    """A new revision of the annotator's own judgment within the project's revision window; the latest counts."""
    if not valid_submission_id(submission_id):
        raise AnswerError({"submission_id": "A submission id of 1–64 characters is required."})
    with transaction.atomic():
        locked = (
            Judgment.objects.select_for_update(of=("self",))
            .select_related("project", "annotator", "assignment")
            .get(pk=judgment.pk)
        )
        if locked.annotator.user_id != user.pk or locked.assignment is None:
            raise SubmissionRefused("This judgment is not yours to revise.")
        existing = JudgmentRevision.objects.filter(submission_id=submission_id).first()
        if existing is not None:
            if existing.judgment_id != locked.pk:
                raise AnswerError({"submission_id": "This submission id was used for another judgment."})
            return locked
        if timezone.now() > revision_open_until(locked):
            raise SubmissionRefused(
                f"The revision window ({locked.project.revision_window_hours} h) for this judgment has closed."
            )
        canonical = validate_answers(project=locked.project, assignment=locked.assignment, answers=answers)
        fields = canonical.as_model_kwargs()
        # Time on task of a revision is the time spent revising; the first revision keeps its own.
        now = timezone.now()
        number = locked.revision_count + 1
        revision = JudgmentRevision.objects.create(
            judgment=locked, number=number, submission_id=submission_id, created_at=now, **fields
        )
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.revision_count = number
        locked.updated_at = now
        locked.save()
        for saver in answer_savers:
            saver(revision, answers)
        judgments_changed.send(sender=Judgment, project_id=locked.project_id)
    return locked


def save_draft(*, assignment: Assignment, user, data: dict, version: int) -> int:
    """Store the draft if `version` is the one the client started from; return the new version.

    Raises StaleDraft when another tab saved a newer draft in between (the caller answers 409).
    """
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().select_related("annotator").get(pk=assignment.pk)
        if locked.annotator.user_id != user.pk:
            raise SubmissionRefused("This comparison is not assigned to you.")
        if locked.status not in (Assignment.Status.RESERVED, Assignment.Status.EXPIRED):
            raise SubmissionRefused("This comparison is no longer open.")
        draft, _ = Draft.objects.get_or_create(assignment=locked)
        if draft.version != version:
            raise StaleDraft(draft.version)
        draft.data = data
        draft.version = version + 1
        draft.save(update_fields=["data", "version", "updated_at"])
        return draft.version


def skip_assignment(*, assignment: Assignment, user, reason: str, note: str = "") -> Assignment:
    """Give the comparison back to the pool for others, saying why; this annotator will not get it again."""
    if reason not in SKIP_REASONS:
        raise AnswerError({"reason": "Choose a reason: " + ", ".join(SKIP_REASONS)})
    text = SKIP_REASONS[reason] if reason != "other" else f"Other: {note.strip()[:480]}"
    if reason == "other" and not note.strip():
        raise AnswerError({"note": "Say briefly why you skip."})
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().select_related("annotator").get(pk=assignment.pk)
        if locked.annotator.user_id != user.pk:
            raise SubmissionRefused("This comparison is not assigned to you.")
        if locked.status != Assignment.Status.RESERVED:
            raise SubmissionRefused("This comparison is no longer open.")
        locked.status = Assignment.Status.SKIPPED
        locked.skip_reason = text
        locked.save(update_fields=["status", "skip_reason"])
        return locked


# --- Project events for open workbenches -----------------------------------------------------------------


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def broadcast_project_event(project: Project, kind: str) -> None:
    """Tell open workbenches of `project` that something changed, after the current transaction commits.

    Best-effort: a failure (Redis down) is logged and never breaks the write; pages also poll.
    """
    project_id = project.pk

    def send() -> None:
        try:
            layer = get_channel_layer()
            if layer is not None:
                async_to_sync(layer.group_send)(
                    project_group(project_id), {"type": "project.event", "kind": kind}
                )
        except Exception:  # noqa: BLE001 - best-effort by design; the page polls as well
            log.warning("project event %s for project %s not delivered", kind, project_id, exc_info=True)

    transaction.on_commit(send)


def set_project_paused(*, project: Project, actor, paused: bool) -> Project:
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(paused=paused)
        project.paused = paused
        AuditEvent.objects.create(
            actor=actor,
            actor_name=actor.get_username(),
            action="project.paused" if paused else "project.resumed",
            project=project,
            target_type="project",
            target_id=str(project.pk),
        )
        broadcast_project_event(project, "paused" if paused else "resumed")
    return project


def update_guidelines(*, project: Project, actor, guidelines: str) -> Project:
    with transaction.atomic():
        now = timezone.now()
        Project.objects.filter(pk=project.pk).update(guidelines=guidelines, guidelines_updated_at=now)
        project.guidelines, project.guidelines_updated_at = guidelines, now
        AuditEvent.objects.create(
            actor=actor,
            actor_name=actor.get_username(),
            action="project.guidelines",
            project=project,
            target_type="project",
            target_id=str(project.pk),
        )
        broadcast_project_event(project, "guidelines")
    return project
