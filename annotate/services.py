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
from functools import cache

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.utils import timezone

from annotate.assignment import has_free_slot
from annotate.models import (
    Assignment,
    Choice,
    Comparison,
    Draft,
    Item,
    Judgment,
    JudgmentRevision,
    Ranking,
    Severity,
)
from annotate.signals import judgments_changed
from infra import prepared
from infra.best_effort import CHANNELS, guarded
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


def check_safety(
    project: Project, safe, cats, severity, *, who: str
) -> tuple[dict[str, str], tuple[bool, list[str], str | None] | None]:
    """One response's safety answer (safe / unsafe, harm categories, severity) checked against the project:
    errors keyed `safe`, `harm_categories`, `severity` saying what is wrong with `who` ("the left response"),
    and the stored (safe, categories, severity), None when safe / unsafe is unanswered."""
    safe = _bool(safe)
    cats = cats or []
    if isinstance(cats, str):
        cats = [cats]
    severity = severity or None
    if safe is None:
        return {"safe": f"Say whether {who} is safe or unsafe."}, None
    if safe:
        errors = {}
        if cats:
            errors["harm_categories"] = "A safe response has no harm categories."
        if severity:
            errors["severity"] = "A safe response has no severity."
        return errors, (True, [], None)
    errors = {}
    if not isinstance(cats, list):
        cats = [cats]
    allowed = set(project.harm_categories or [])
    unknown = [c for c in cats if c not in allowed]
    if unknown:
        errors["harm_categories"] = "Not in this project's list: " + ", ".join(map(str, unknown))
    elif not cats:
        errors["harm_categories"] = f"Pick at least one harm category for {who}."
    if severity not in Severity.values:
        errors["severity"] = f"Choose the severity for {who}."
    return errors, (
        False,
        sorted(set(cats)) if not unknown else [],
        severity if severity in Severity.values else None,
    )


def check_justification(project: Project, answers: dict, errors: dict[str, str]) -> str:
    """The justification to store (adding its error to `errors` when required and missing, or too long)."""
    justification = str(answers.get("justification") or "").strip()
    if project.justification == Project.Justification.REQUIRED and not justification:
        errors["justification"] = "A justification is required on this project."
    elif len(justification) > MAX_JUSTIFICATION:
        errors["justification"] = f"Keep the justification under {MAX_JUSTIFICATION} characters."
    return "" if project.justification == Project.Justification.HIDDEN else justification


def time_spent(assignment: Assignment, answers: dict) -> int:
    """Time on task in ms: the page's count, else since the claim; at most a day."""
    try:
        spent = int(answers.get("time_spent_ms") or 0)
    except (TypeError, ValueError):
        spent = 0
    if spent <= 0:
        spent = int((timezone.now() - assignment.created_at).total_seconds() * 1000)
    return max(0, min(spent, 24 * 3600 * 1000))


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
        for shown in SIDES:
            canon = _to_canonical_side(shown, shown_left)
            bad, value = check_safety(
                project,
                answers.get(f"{shown}_safe"),
                answers.get(f"{shown}_harm_categories"),
                answers.get(f"{shown}_severity"),
                who=f"the {shown} response",
            )
            errors.update({f"{shown}_{name}": message for name, message in bad.items()})
            if value is not None:
                out[f"{canon}_safe"], out[f"{canon}_harm_categories"], out[f"{canon}_severity"] = value

    out["justification"] = check_justification(project, answers, errors)
    out["time_spent_ms"] = time_spent(assignment, answers)

    for validator in answer_validators:
        errors.update(validator(assignment, answers) or {})
    if errors:
        raise AnswerError(errors)
    return Canonical(out)


def _by_submission(submission_id: str) -> Judgment | None:
    rev = JudgmentRevision.objects.filter(submission_id=submission_id).select_related("judgment").first()
    return rev.judgment if rev else None


def keep_draft(assignment: Assignment, answers: dict) -> None:
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
    draft_tab: str = "",
) -> Judgment:
    """Record the annotator's judgment for their assignment; a repeated submission_id returns the same one.

    With `member_slug` the assignment must also lie on the live project of that slug, on which the user holds an
    active membership: checked in the statement that locks the assignment, which also brings the project's row
    (the workbench's JSON submit: `access.member_project`'s check without a statement of its own). Otherwise
    `assignment.project`, when given, is the project it must lie on. `draft_tab` names the browser tab that
    submits: a newer draft saved by that same tab is no conflict.

    Raises AnswerError (field errors, nothing stored), StaleDraft (an older tab submitting over a newer draft),
    or SubmissionRefused (reservation expired and every slot is taken: the answers are kept as a draft).
    """
    if not valid_submission_id(submission_id):
        raise AnswerError({"submission_id": "A submission id of 1–64 characters is required."})
    try:
        judgment, refused = _submit_locked(
            assignment, user, answers, submission_id, draft_version, member_slug, draft_tab
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
    draft_tab: str,
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
        if draft_is_stale(locked, draft_version, draft_tab):
            raise StaleDraft(locked.draft_version)
        project = locked.comparison.project = locked.project  # read with the lock
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
                keep_draft(locked, answers)
                return None, True
        return _record(locked, canonical, submission_id=submission_id, answers=answers, now=now), False


# The submit's two statements, in SQL run prepared (infra/prepared.py): the lock, and the writes. The ORM's
# compilation of the lock (seven tables) and of the four writes cost more CPU than PostgreSQL spent running
# them, and PostgreSQL planned the lock afresh on every submit.
_LOCK_SQL = (
    "SELECT {assignment}, an.user_id, an.kind, d.id, d.version, {project}, {comparison}, {item}"
    " FROM annotate_assignment a"
    " JOIN annotate_annotator an ON an.id = a.annotator_id"
    " JOIN annotate_project p ON p.id = a.project_id"
    " JOIN annotate_comparison c ON c.id = a.comparison_id"
    " JOIN annotate_item i ON i.id = c.item_id"
    " LEFT JOIN annotate_draft d ON d.assignment_id = a.id"
    " WHERE a.id = %s{member} FOR UPDATE OF a"
)
# A member's own assignment: on the live project of that slug, with an active membership there.
_MEMBER_SQL = (
    " AND an.user_id = %s AND p.slug = %s AND p.deleted_at IS NULL AND EXISTS (SELECT 1 FROM"
    " annotate_membership m WHERE m.project_id = p.id AND m.user_id = an.user_id AND m.is_active)"
)


@cache
def _lock_sql(member: bool) -> str:
    return _LOCK_SQL.format(
        assignment=prepared.columns(Assignment, "a"),
        project=prepared.columns(Project, "p"),
        comparison=prepared.columns(Comparison, "c"),
        item=prepared.columns(Item, "i"),
        member=_MEMBER_SQL if member else "",
    )


def _lock_assignment(
    pk: int, *, member_slug: str | None = None, user_id: int | None = None
) -> Assignment | None:
    """The assignment row, locked, with its project and its comparison with the item (what the rubric
    checklist reads), and its annotator's user and kind and its draft's id and version: one statement, no lazy
    loads. With `member_slug`, only a member's own: the assignment must be the user's, on the live project of
    that slug, on which they hold an active membership (what access.member_project checks). Sets
    `annotator_user_id`, `annotator_kind`, `draft_id` and `draft_version` (None without a draft) on the
    instance."""
    if member_slug is None:
        rows = prepared.run(_lock_sql(False), [pk])
    else:
        rows = prepared.run(_lock_sql(True), [pk, user_id, member_slug])
    if not rows:
        return None
    row = rows[0]
    locked = prepared.load(Assignment, row)
    at = len(Assignment._meta.concrete_fields)
    locked.annotator_user_id, locked.annotator_kind, locked.draft_id, locked.draft_version = row[at : at + 4]
    at += 4
    locked.project = prepared.load(Project, row, at)
    at += len(Project._meta.concrete_fields)
    locked.comparison = comparison = prepared.load(Comparison, row, at)
    comparison.item = prepared.load(Item, row, at + len(Comparison._meta.concrete_fields))
    return locked


_JUDGMENT_FIELDS = [f.attname for f in Judgment._meta.concrete_fields if not f.primary_key]
_REVISION_FIELDS = [
    f.attname
    for f in JudgmentRevision._meta.concrete_fields
    if not f.primary_key and f.attname != "judgment_id"
]
# One statement writes the judgment and its first revision, marks the assignment submitted, counts the crowd
# judgment (when its parameter is true) and deletes the draft (when there is one).
_RECORD_SQL = (
    f"WITH j AS ({prepared.insert(Judgment, _JUDGMENT_FIELDS)} RETURNING id),"
    f" r AS (INSERT INTO {JudgmentRevision._meta.db_table} (judgment_id, {prepared.column_names(JudgmentRevision, _REVISION_FIELDS)})"
    f" SELECT j.id, {', '.join('%s' for _ in _REVISION_FIELDS)} FROM j RETURNING id),"
    " a AS (UPDATE annotate_assignment SET status = %s, submitted_at = %s WHERE id = %s),"
    " c AS (UPDATE annotate_comparison SET crowd_judgments = crowd_judgments + 1 WHERE id = %s AND %s),"
    " d AS (DELETE FROM annotate_draft WHERE id = %s)"
    " SELECT j.id, r.id FROM j, r"
)


def _defaults(model, names: list[str]) -> dict:
    return {name: model._meta.get_field(name).get_default() for name in names}


def _record(locked: Assignment, canonical: Canonical, *, submission_id: str, answers: dict, now) -> Judgment:
    """Inside the submit transaction, with the assignment row locked."""
    fields = canonical.as_model_kwargs()
    judgment_row = _defaults(Judgment, _JUDGMENT_FIELDS) | {
        "project_id": locked.project_id,
        "comparison_id": locked.comparison_id,
        "annotator_id": locked.annotator_id,
        "assignment_id": locked.pk,
        "is_gold": locked.is_gold,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    revision_row = _defaults(JudgmentRevision, _REVISION_FIELDS) | {
        "number": 1,
        "submission_id": submission_id,
        "created_at": now,
        **fields,
    }
    counted = not locked.is_gold and locked.annotator_kind == Annotator.Kind.CROWD
    revision_params = prepared.params(JudgmentRevision, revision_row)
    [(judgment_id, revision_id)] = prepared.run(
        _RECORD_SQL,
        [
            *prepared.params(Judgment, judgment_row),
            *revision_params,
            Assignment.Status.SUBMITTED.value,
            now,
            locked.pk,
            locked.comparison_id,
            counted,
            locked.draft_id,
        ],
    )
    judgment = Judgment.from_db(
        DEFAULT_DB_ALIAS, ["id", *judgment_row], [judgment_id, *judgment_row.values()]
    )
    judgment.comparison = locked.comparison  # the loaded instance: the rubric hook reads it without a query
    judgment.assignment = locked
    revision = JudgmentRevision.from_db(
        DEFAULT_DB_ALIAS,
        ["id", "judgment_id", *revision_row],
        [revision_id, judgment_id, *revision_row.values()],
    )
    revision.judgment = judgment
    for saver in answer_savers:
        saver(revision, answers)
    judgments_changed.send(sender=Judgment, project_id=locked.project_id)
    return judgment


def revision_open_until(judgment: Judgment | Ranking) -> timezone.datetime:
    """Until when a judgment or a ranking may be revised."""
    return judgment.created_at + timedelta(hours=judgment.project.revision_window_hours)


def lock_own_for_revision(model, pk: int, *, user, submission_id: str, related: tuple[str, ...] = ()):
    """Inside a transaction: lock the user's own submitted judgment or ranking (`model`) for a new revision.

    Returns (locked, done): done when `submission_id` already made a revision of it (a resubmit: store
    nothing). Raises AnswerError (a bad or someone else's submission id) or SubmissionRefused (not theirs,
    or its revision window has closed)."""
    noun = model._meta.verbose_name
    if not valid_submission_id(submission_id):
        raise AnswerError({"submission_id": "A submission id of 1–64 characters is required."})
    locked = (
        model.objects.select_for_update(of=("self",))
        .select_related("project", "annotator", "assignment", *related)
        .get(pk=pk)
    )
    if locked.annotator.user_id != user.pk or locked.assignment is None:
        raise SubmissionRefused(f"This {noun} is not yours to revise.")
    revisions = model._meta.get_field("revisions")
    used_on = (
        revisions.related_model.objects.filter(submission_id=submission_id)
        .values_list(revisions.field.attname, flat=True)
        .first()
    )
    if used_on is not None:
        if used_on != locked.pk:
            raise AnswerError({"submission_id": f"This submission id was used for another {noun}."})
        return locked, True
    if timezone.now() > revision_open_until(locked):
        raise SubmissionRefused(
            f"The revision window ({locked.project.revision_window_hours} h) for this {noun} has closed."
        )
    return locked, False


def append_revision(locked, fields: dict, *, submission_id: str | None, now):
    """Give a locked judgment or ranking its next revision with `fields` (the answers), and make them its own:
    the record mirrors its latest revision. Returns the new revision."""
    number = locked.revision_count + 1
    revisions = type(locked)._meta.get_field("revisions")
    revision = revisions.related_model.objects.create(
        **{revisions.field.name: locked},
        number=number,
        submission_id=submission_id,
        created_at=now,
        **fields,
    )
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.revision_count = number
    locked.updated_at = now
    locked.save()
    return revision


def revise_judgment(*, judgment: Judgment, user, answers: dict, submission_id: str) -> Judgment:
    """A new revision of the annotator's own judgment within the project's revision window; the latest counts."""
    with transaction.atomic():
        locked, done = lock_own_for_revision(Judgment, judgment.pk, user=user, submission_id=submission_id)
        if done:
            return locked
        canonical = validate_answers(project=locked.project, assignment=locked.assignment, answers=answers)
        fields = canonical.as_model_kwargs()
        # Time on task of a revision is the time spent revising; the first revision keeps its own.
        revision = append_revision(locked, fields, submission_id=submission_id, now=timezone.now())
        for saver in answer_savers:
            saver(revision, answers)
        judgments_changed.send(sender=Judgment, project_id=locked.project_id)
    return locked


def save_draft(*, assignment: Assignment, user, data: dict, version: int, tab: str = "", seq: int = 0) -> int:
    """Store the draft if `version` is the one the client started from; return the draft's version.

    `tab` names the browser tab (it survives a reload of that tab) and `seq` counts its changes: a save from
    the tab that wrote the stored draft is taken when it is newer (`seq` higher) whatever its version, and
    ignored when older — a save sent as the page unloaded may land after the reloaded page's own. Both are
    kept in the draft's data as `_tab` and `_seq`.

    Raises StaleDraft when another tab saved a newer draft in between (the caller answers 409).
    """
    with transaction.atomic():
        locked = Assignment.objects.select_for_update().select_related("annotator").get(pk=assignment.pk)
        if locked.annotator.user_id != user.pk:
            raise SubmissionRefused("This comparison is not assigned to you.")
        if locked.status not in (Assignment.Status.RESERVED, Assignment.Status.EXPIRED):
            raise SubmissionRefused("This comparison is no longer open.")
        draft, _ = Draft.objects.get_or_create(assignment=locked)
        same_tab = bool(tab) and _draft_tab(draft.data) == tab
        if same_tab and seq <= _draft_seq(draft.data):
            return draft.version  # an older save of this tab, overtaken by a newer one
        if not same_tab and draft.version != version:
            raise StaleDraft(draft.version)
        draft.data = {**data, "_tab": tab, "_seq": seq} if tab else data
        draft.version += 1
        draft.save(update_fields=["data", "version", "updated_at"])
        return draft.version


def _draft_tab(data) -> str:
    return str(data.get("_tab") or "") if isinstance(data, dict) else ""


def _draft_seq(data) -> int:
    value = data.get("_seq") if isinstance(data, dict) else None
    return value if isinstance(value, int) else 0


def draft_is_stale(locked: Assignment, draft_version: int | None, tab: str) -> bool:
    """A submit started from an older draft than the stored one, written by another tab."""
    if draft_version is None or locked.draft_version is None or locked.draft_version <= draft_version:
        return False
    if not tab:
        return True
    data = Draft.objects.filter(pk=locked.draft_id).values_list("data", flat=True).first()
    return _draft_tab(data) != tab


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
        # Best-effort by design (one warning an interval while Redis is down); the page polls as well.
        layer = get_channel_layer()
        if layer is not None:
            send_to_group = async_to_sync(layer.group_send)
            message = {"type": "project.event", "kind": kind}
            guarded(CHANNELS, f"project event {kind}", send_to_group, project_group(project_id), message)

    transaction.on_commit(send)


def project_settings_changed(project: Project, changes: dict) -> None:
    """A project's settings page changed `changes`: open workbenches reload the guidelines when they changed."""
    if "guidelines" in changes:
        broadcast_project_event(project, "guidelines")


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
