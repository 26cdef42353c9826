"""Rubric writes (authoring, publishing, pinning) and the hook the annotator's workbench calls.

Workbench contract (see also the report of issue 4):
- `checklist_for(comparison)` → the criteria to show for each response: the project's pinned rubric version,
  then the item's own criteria (keys prefixed "item:").
- answers arrive as `answers["rubric"] = {"a": {key: "yes"|"no"|"na"}, "b": {...}}` (canonical sides);
- `validate_rubric_answers(assignment, answers)` → {field name: message}; field names are the radio names
  of templates/rubrics/checklist.html, `rubric-<side>-<key>`, or `rubric` for the whole block;
- `save_rubric_answers(revision, answers)` stores CriterionAnswer rows for that revision, with the version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from projects.models import AuditEvent, Project

from .models import (
    DEFAULT_WEIGHTS,
    KEY_HELP,
    KEY_RE,
    Criterion,
    CriterionAnswer,
    FrozenVersionError,
    Rubric,
    RubricVersion,
    weight_error,
)
from .scoring import ScoringCriterion, weighted_score

ITEM_PREFIX = "item:"
CATEGORIES = [c.value for c in Criterion.Category]
ANSWER_TYPES = [a.value for a in Criterion.AnswerType]
ANSWER_CHOICES = {"yes_no": ("yes", "no"), "yes_no_na": ("yes", "no", "na")}


@dataclass(frozen=True)
class CriterionView:
    """One line of a checklist, from a rubric version or from an item's own criteria."""

    key: str  # the rubric criterion's key, or "item:<id>" for an item criterion
    text: str
    guidance: str
    category: str
    weight: float
    answer_type: str  # "yes_no" | "yes_no_na"
    source: str  # "rubric" | "item"
    criterion_id: int | None = None
    version_id: int | None = None

    @property
    def choices(self) -> tuple[str, ...]:
        return ANSWER_CHOICES[self.answer_type]

    @property
    def is_essential(self) -> bool:
        return self.category == Criterion.Category.ESSENTIAL

    def scoring(self) -> ScoringCriterion:
        return ScoringCriterion(self.key, self.category, self.weight)


def _view(criterion: Criterion) -> CriterionView:
    return CriterionView(
        key=criterion.key,
        text=criterion.text,
        guidance=criterion.guidance,
        category=criterion.category,
        weight=criterion.weight,
        answer_type=criterion.answer_type,
        source="rubric",
        criterion_id=criterion.pk,
        version_id=criterion.version_id,
    )


def version_views(version: RubricVersion | None) -> list[CriterionView]:
    if version is None:
        return []
    return [_view(c) for c in version.criteria.order_by("position", "id")]


# --- Item criteria (per prompt) ----------------------------------------------------------------------------


def validate_item_criteria(value: Any, *, where: str = "rubric") -> tuple[list[dict], list[str]]:
    """Check an item's own criteria, as a `generic` line's `"rubric": [...]` carries them.

    Shape of each: {"id": str, "text": str, "category": essential|important|optional|pitfall,
    "weight"?: number (default by category), "answer_type"?: "yes_no"|"yes_no_na" (default "yes_no"),
    "guidance"?: str}. Returns (the list as given, errors naming `where[i].field`); the importer stores the
    list unchanged when there is no error.
    """
    errors: list[str] = []
    if not isinstance(value, list):
        return [], [f"{where}: must be a list of criteria, not {type(value).__name__}"]
    seen: set[str] = set()
    allowed = {"id", "text", "category", "weight", "answer_type", "guidance"}
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{at}: must be an object")
            continue
        unknown = sorted(set(entry) - allowed)
        if unknown:
            errors.append(f"{at}: unknown field(s) {', '.join(unknown)}")
        ident = entry.get("id")
        if not isinstance(ident, str) or not KEY_RE.match(ident):
            errors.append(f"{at}.id: {ident!r} is not a valid id ({KEY_HELP})")
        elif ident in seen:
            errors.append(f"{at}.id: {ident!r} appears twice")
        else:
            seen.add(ident)
        if not isinstance(entry.get("text"), str) or not entry["text"].strip():
            errors.append(f"{at}.text: required, a non-empty string")
        category = entry.get("category")
        if category not in CATEGORIES:
            errors.append(f"{at}.category: {category!r} is not one of {', '.join(CATEGORIES)}")
        if "weight" in entry:
            weight = entry["weight"]
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                errors.append(f"{at}.weight: must be a number")
            elif category in CATEGORIES and (message := weight_error(category, float(weight))):
                errors.append(f"{at}.weight: {message}")
        if "answer_type" in entry and entry["answer_type"] not in ANSWER_TYPES:
            errors.append(
                f"{at}.answer_type: {entry['answer_type']!r} is not one of {', '.join(ANSWER_TYPES)}"
            )
        if "guidance" in entry and not isinstance(entry["guidance"], str):
            errors.append(f"{at}.guidance: must be a string")
    return value, errors


def item_views(criteria: Any) -> list[CriterionView]:
    views = []
    for entry in criteria or []:
        views.append(
            CriterionView(
                key=ITEM_PREFIX + entry["id"],
                text=entry["text"],
                guidance=entry.get("guidance", ""),
                category=entry["category"],
                weight=float(entry.get("weight", DEFAULT_WEIGHTS[entry["category"]])),
                answer_type=entry.get("answer_type", "yes_no"),
                source="item",
            )
        )
    return views


# --- The workbench hook ------------------------------------------------------------------------------------


def checklist_for(comparison) -> list[CriterionView]:
    """The project's pinned rubric criteria (in order), then the item's own criteria."""
    project = comparison.project
    return pinned_views(project) + item_views(comparison.item.criteria)


def pinned_views(project) -> list[CriterionView]:
    """The pinned version's criteria, kept on the project instance while the pin is the same: a submit reads
    the checklist twice (validate, then save), and a pinned version is published, hence frozen."""
    version_id = project.rubric_version_id
    if version_id is None:
        return []
    kept = getattr(project, "pinned_rubric_views", None)
    if kept is None or kept[0] != version_id:
        kept = (version_id, version_views(project.rubric_version))
        project.pinned_rubric_views = kept
    return list(kept[1])


def _rubric_block(answers: Mapping[str, Any]) -> Any:
    return answers.get("rubric") if isinstance(answers, Mapping) else None


def validate_rubric_answers(assignment, answers: dict) -> dict[str, str]:
    """Errors in `answers["rubric"]` for this assignment's comparison, as {field: message}; {} when fine.

    Unknown keys and values that the criterion's answer type does not allow are errors; an unanswered
    essential criterion is an error when the project's `rubric_essential_blocks` is on.
    """
    checklist = checklist_for(assignment.comparison)
    block = _rubric_block(answers)
    if block is None:
        block = {}
    if not isinstance(block, Mapping):
        return {"rubric": "Rubric answers must be an object with sides 'a' and 'b'."}
    errors: dict[str, str] = {}
    if set(block) - {"a", "b"}:
        errors["rubric"] = "Rubric answers have sides 'a' and 'b' only."
    by_key = {c.key: c for c in checklist}
    blocks = assignment.project.rubric_essential_blocks
    for side in ("a", "b"):
        given = block.get(side) or {}
        if not isinstance(given, Mapping):
            errors["rubric"] = f"Rubric answers for side {side} must be an object."
            continue
        for key, value in given.items():
            criterion = by_key.get(key)
            if criterion is None:
                errors[f"rubric-{side}-{key}"] = f"There is no criterion {key!r} on this checklist."
            elif value not in criterion.choices:
                errors[f"rubric-{side}-{key}"] = (
                    f"Answer {value!r} is not allowed here; choose one of {', '.join(criterion.choices)}."
                )
        if blocks:
            for criterion in checklist:
                if criterion.is_essential and given.get(criterion.key) in (None, ""):
                    errors[f"rubric-{side}-{criterion.key}"] = (
                        "This essential criterion needs an answer."  # beside its item: no stored side named
                    )
    return errors


def save_rubric_answers(revision, answers: dict) -> None:
    """Store `answers["rubric"]` for a judgment revision: one CriterionAnswer per answered criterion and side.

    Rubric criteria record the project's pinned version (and the criterion row); item criteria record no
    version. Call after validate_rubric_answers; unknown keys are ignored here. Nothing answered: no query.
    """
    block = _rubric_block(answers)
    if not isinstance(block, Mapping) or not any(block.get(side) for side in ("a", "b")):
        return
    comparison = revision.judgment.comparison
    by_key = {c.key: c for c in checklist_for(comparison)}
    rows = []
    for side in ("a", "b"):
        for key, value in (block.get(side) or {}).items():
            criterion = by_key.get(key)
            if criterion is None or value not in criterion.choices:
                continue
            rows.append(
                CriterionAnswer(
                    revision=revision,
                    side=side,
                    version_id=criterion.version_id,
                    criterion_id=criterion.criterion_id,
                    criterion_key=key,
                    answer=value,
                )
            )
    CriterionAnswer.objects.bulk_create(rows)


def answers_by_side(revision) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {"a": {}, "b": {}}
    for side, key, answer in revision.criterion_answers.values_list("side", "criterion_key", "answer"):
        out[side][key] = answer
    return out


def scores_for(checklist: list[CriterionView], answers: Mapping[str, Mapping[str, str]], project) -> dict:
    criteria = [c.scoring() for c in checklist]
    cap = project.rubric_essential_cap if project is not None else 0.5
    return {
        side: {
            "score": weighted_score(criteria, answers.get(side, {}), essential_cap=cap),
            "absolute": weighted_score(
                criteria, answers.get(side, {}), normalise="absolute", essential_cap=cap
            ),
        }
        for side in ("a", "b")
    }


# --- raw rows ------------------------------------------------------------------------------------------------


def rubric_answers_for_raw(revision) -> dict | None:
    """The `rubric` field of a `raw` row for this revision, or None when it has no criterion answers."""
    rows = list(revision.criterion_answers.select_related("version__rubric").order_by("id"))
    if not rows:
        return None
    version = next((r.version for r in rows if r.version is not None), None)
    out: dict[str, Any] = {"version": version.label if version else None, "a": {}, "b": {}}
    for row in rows:
        out[row.side][row.criterion_key] = row.answer
    return out


def store_raw_rubric_answers(revision, raw: dict, project) -> list[str]:
    """Store a `raw` row's `rubric` field for an imported revision; returns errors (and stores nothing) when bad.

    `raw["version"]` names a published version of the rubric pinned on the project, as exported
    ("<rubric name> v<number>", or just the number); keys are that version's criterion keys or "item:<id>".
    """
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return ["rubric: must be an object with version, a and b"]
    errors: list[str] = []
    pinned = project.rubric_version
    version = None
    sides = [raw.get(side) or {} for side in ("a", "b")]
    uses_rubric = any(
        not str(key).startswith(ITEM_PREFIX) for given in sides if isinstance(given, Mapping) for key in given
    )
    label = raw.get("version")
    if uses_rubric or label is not None:
        if pinned is None:
            return ["rubric.version: the project has no rubric version pinned"]
        candidates = RubricVersion.objects.filter(
            rubric_id=pinned.rubric_id, status=RubricVersion.Status.PUBLISHED
        ).select_related("rubric")
        version = next(
            (v for v in candidates if label in (v.label, str(v.number), v.number)),
            None,
        )
        if version is None:
            return [f"rubric.version: {label!r} is not a published version of rubric {pinned.rubric.name!r}"]
    criteria = {c.key: c for c in version.criteria.all()} if version else {}
    items = {c.key: c for c in item_views(revision.judgment.comparison.item.criteria)}
    rows = []
    for side in ("a", "b"):
        given = raw.get(side) or {}
        if not isinstance(given, Mapping):
            errors.append(f"rubric.{side}: must be an object")
            continue
        for key, value in given.items():
            if key in items:
                allowed, criterion = items[key].choices, None
            elif key in criteria:
                criterion = criteria[key]
                allowed = ANSWER_CHOICES[criterion.answer_type]
            else:
                errors.append(f"rubric.{side}.{key}: no such criterion")
                continue
            if value not in allowed:
                errors.append(f"rubric.{side}.{key}: {value!r} is not one of {', '.join(allowed)}")
                continue
            rows.append(
                CriterionAnswer(
                    revision=revision,
                    side=side,
                    version=version if criterion is not None else None,
                    criterion=criterion,
                    criterion_key=key,
                    answer=value,
                )
            )
    if errors:
        return errors
    CriterionAnswer.objects.bulk_create(rows)
    return []


# --- Authoring -----------------------------------------------------------------------------------------------


def _next_key(rubric: Rubric) -> str:
    """`c<n>` with n above every numbered key any version of this rubric ever used (keys are never reused)."""
    used = Criterion.objects.filter(version__rubric=rubric).values_list("key", flat=True)
    numbers = [int(m.group(1)) for k in used if (m := re.fullmatch(r"c(\d+)", k))]
    return f"c{max(numbers, default=0) + 1}"


def _require_draft(version: RubricVersion) -> None:
    if version.is_published:
        raise FrozenVersionError(f"{version} is published and cannot be changed; start a new draft.")


@transaction.atomic
def rubric_create(*, name: str, description: str = "", user=None) -> Rubric:
    rubric = Rubric.objects.create(name=name, description=description, created_by=user)
    RubricVersion.objects.create(rubric=rubric, number=1)
    return rubric


@transaction.atomic
def rubric_update(*, rubric: Rubric, name: str, description: str) -> Rubric:
    rubric.name = name
    rubric.description = description
    rubric.save(update_fields=["name", "description"])
    return rubric


@transaction.atomic
def criterion_add(
    *,
    version: RubricVersion,
    text: str,
    category: str = "important",
    weight: float | None = None,
    guidance: str = "",
    answer_type: str = "yes_no",
    key: str | None = None,
) -> Criterion:
    version = RubricVersion.objects.select_for_update().get(pk=version.pk)
    _require_draft(version)
    position = (version.criteria.aggregate(m=Max("position"))["m"] or 0) + 1
    criterion = Criterion(
        version=version,
        key=key or _next_key(version.rubric),
        position=position,
        text=text,
        guidance=guidance,
        category=category,
        weight=DEFAULT_WEIGHTS[category] if weight is None else weight,
        answer_type=answer_type,
    )
    criterion.full_clean()
    criterion.save()
    return criterion


@transaction.atomic
def criterion_update(*, criterion: Criterion, **fields: Any) -> Criterion:
    _require_draft(criterion.version)
    allowed = {"text", "guidance", "category", "weight", "answer_type"}
    for name, value in fields.items():
        if name not in allowed:
            raise ValueError(f"criterion field {name!r} cannot be edited")
        setattr(criterion, name, value)
    if criterion.weight is None:
        criterion.weight = DEFAULT_WEIGHTS[criterion.category]
    criterion.full_clean()
    criterion.save()
    return criterion


@transaction.atomic
def criterion_delete(*, criterion: Criterion) -> None:
    _require_draft(criterion.version)
    criterion.delete()


@transaction.atomic
def criteria_reorder(*, version: RubricVersion, keys: list[str]) -> None:
    """Set the order of a draft's criteria; `keys` must name each criterion exactly once."""
    version = RubricVersion.objects.select_for_update().get(pk=version.pk)
    _require_draft(version)
    criteria = {c.key: c for c in version.criteria.all()}
    if sorted(keys) != sorted(criteria):
        raise ValueError("The new order must name every criterion of the draft exactly once.")
    for position, key in enumerate(keys, start=1):
        if criteria[key].position != position:
            criteria[key].position = position
            criteria[key].save(update_fields=["position"])


def criterion_move(*, criterion: Criterion, offset: int) -> None:
    keys = list(criterion.version.criteria.order_by("position", "id").values_list("key", flat=True))
    index = keys.index(criterion.key)
    target = max(0, min(len(keys) - 1, index + offset))
    keys.insert(target, keys.pop(index))
    criteria_reorder(version=criterion.version, keys=keys)


@transaction.atomic
def version_publish(*, version: RubricVersion, user) -> RubricVersion:
    version = RubricVersion.objects.select_for_update().get(pk=version.pk)
    _require_draft(version)
    if not version.criteria.exists():
        raise FrozenVersionError("A rubric version needs at least one criterion before it is published.")
    version.status = RubricVersion.Status.PUBLISHED
    version.published_at = timezone.now()
    version.published_by = user if getattr(user, "is_authenticated", False) else None
    version.save()
    AuditEvent.objects.create(
        actor=version.published_by,
        actor_name=getattr(user, "username", "") or "",
        action="rubric.publish",
        target_type="rubric_version",
        target_id=str(version.pk),
        data={"rubric": version.rubric_id, "number": version.number, "criteria": version.criteria.count()},
    )
    return version


@transaction.atomic
@transaction.atomic
def rubric_copy(*, rubric: Rubric, user) -> Rubric:
    """A new rubric owned by `user`: a draft with the criteria of `rubric`'s newest version (keys kept)."""
    source = rubric.versions.order_by("-number").first()
    copy = Rubric.objects.create(
        name=f"Copy of {rubric.name}"[:200], description=rubric.description, created_by=user
    )
    draft = RubricVersion.objects.create(rubric=copy, number=1, notes=f"Copied from {rubric.name}")
    if source is not None:
        _copy_criteria(source, draft)
    return copy


@transaction.atomic
def rubric_share(*, rubric: Rubric, projects: list[Project], allowed: list[Project], user) -> None:
    """Share `rubric` with exactly `projects` among `allowed` (the projects `user` researches on); sharing
    with projects outside `allowed` is left as it was."""
    keep = [p for p in rubric.shared_with.all() if p not in allowed]
    rubric.shared_with.set([*keep, *projects])


def _copy_criteria(source: RubricVersion, target: RubricVersion) -> None:
    Criterion.objects.bulk_create(
        Criterion(
            version=target,
            key=c.key,
            position=c.position,
            text=c.text,
            guidance=c.guidance,
            category=c.category,
            weight=c.weight,
            answer_type=c.answer_type,
        )
        for c in source.criteria.order_by("position", "id")
    )


def draft_from(*, version: RubricVersion, user=None) -> RubricVersion:
    """The rubric's open draft; when there is none, a new one copied from `version` (criteria keep their keys)."""
    rubric = Rubric.objects.select_for_update().get(pk=version.rubric_id)
    existing = rubric.versions.filter(status=RubricVersion.Status.DRAFT).first()
    if existing is not None:
        return existing
    number = (rubric.versions.aggregate(m=Max("number"))["m"] or 0) + 1
    draft = RubricVersion.objects.create(rubric=rubric, number=number, based_on=version)
    _copy_criteria(version, draft)
    return draft


@transaction.atomic
def draft_discard(*, version: RubricVersion) -> None:
    _require_draft(version)
    version.criteria.all().delete()
    version.delete()


@transaction.atomic
def project_pin_version(*, project: Project, version: RubricVersion | None, user) -> Project:
    """Pin a published version on a project (None unpins). Recorded as an audit event."""
    if version is not None and not version.is_published:
        raise FrozenVersionError("Only a published rubric version can be pinned on a project.")
    previous = project.rubric_version_id
    project.rubric_version = version
    project.save(update_fields=["rubric_version"])
    AuditEvent.objects.create(
        actor=user if getattr(user, "is_authenticated", False) else None,
        actor_name=getattr(user, "username", "") or "",
        action="project.rubric_pin",
        project=project,
        target_type="rubric_version",
        target_id=str(version.pk) if version else "",
        data={"previous": previous, "version": version.pk if version else None},
    )
    return project


# --- Differences ---------------------------------------------------------------------------------------------

DIFF_FIELDS = ["text", "guidance", "category", "weight", "answer_type"]


def version_diff(old: RubricVersion, new: RubricVersion) -> list[dict]:
    """Criterion by criterion, matched by key: {"key", "status": added|removed|changed|unchanged,
    "changes": [(field, old, new)], "old", "new"}; `position` changes show as a change of place."""
    before = {c.key: (i, c) for i, c in enumerate(old.criteria.order_by("position", "id"), start=1)}
    after = {c.key: (i, c) for i, c in enumerate(new.criteria.order_by("position", "id"), start=1)}
    rows = []
    for key, (place, criterion) in after.items():
        if key not in before:
            rows.append({"key": key, "status": "added", "changes": [], "old": None, "new": criterion})
            continue
        old_place, previous = before[key]
        changes = [
            (f, getattr(previous, f), getattr(criterion, f))
            for f in DIFF_FIELDS
            if getattr(previous, f) != getattr(criterion, f)
        ]
        if old_place != place:
            changes.append(("place", old_place, place))
        rows.append(
            {
                "key": key,
                "status": "changed" if changes else "unchanged",
                "changes": changes,
                "old": previous,
                "new": criterion,
            }
        )
    for key, (_place, previous) in before.items():
        if key not in after:
            rows.append({"key": key, "status": "removed", "changes": [], "old": previous, "new": None})
    return rows


def rubric_answers_from_post(data) -> dict:
    """Parse the checklist's radio fields (`rubric-<side>-<key>`) from a QueryDict into the answers shape:
    {"a": {key: answer}, "b": {...}}. The workbench puts this under `answers["rubric"]`."""
    out: dict[str, dict[str, str]] = {"a": {}, "b": {}}
    for name in data:
        if name.startswith(("rubric-a-", "rubric-b-")):
            value = data.get(name)
            if value:
                out[name[7]][name[9:]] = value
    return out
