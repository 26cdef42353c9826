"""Plug the rubric checklist into the annotator's workbench.

`annotate.services` keeps three registries: `checklist_providers` (the checklist lines for a comparison),
`answer_validators` (called with the assignment and the submitted answers, returning {field: message}) and
`answer_savers` (called with the new JudgmentRevision and the answers inside the submit transaction);
`answer_loaders` gives a stored judgment's latest checklist answers back as form fields, to prefill a revision.
The workbench form posts the checklist as radio fields `rubric-<side>-<key>`; the JSON API may send
`answers["rubric"] = {"a": {...}, "b": {...}}` directly. Both reach the rubric services in the second shape.
"""

from __future__ import annotations

from annotate import services as annotate_services

from .services import (
    answers_by_side,
    checklist_for,
    rubric_answers_from_post,
    save_rubric_answers,
    validate_rubric_answers,
)


def with_rubric(answers: dict) -> dict:
    if isinstance(answers.get("rubric"), dict):
        return answers
    return {**answers, "rubric": rubric_answers_from_post(answers)}


def validate(assignment, answers: dict) -> dict[str, str]:
    return validate_rubric_answers(assignment, with_rubric(answers))


def save(revision, answers: dict) -> None:
    save_rubric_answers(revision, with_rubric(answers))


def load(judgment) -> dict[str, str]:
    """The checklist answers of the judgment's latest revision as the form's radio fields."""
    latest = judgment.revisions.order_by("-number").first()
    if latest is None:
        return {}
    return {
        f"rubric-{side}-{key}": answer
        for side, answers in answers_by_side(latest).items()
        for key, answer in answers.items()
    }


def register() -> None:
    for registry, function in (
        (annotate_services.checklist_providers, checklist_for),
        (annotate_services.answer_validators, validate),
        (annotate_services.answer_savers, save),
        (annotate_services.answer_loaders, load),
    ):
        if function not in registry:
            registry.append(function)
