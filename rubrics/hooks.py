"""Plug the rubric checklist into the annotator's workbench (issue 3), when the workbench has its registries.

`annotate.services` (the workbench) keeps two lists: `answer_validators` (called with the assignment and the
submitted answers dict, returning {field: message}) and `answer_savers` (called with the new JudgmentRevision
and the answers dict inside the submit transaction). Where annotate.services or those names do not exist yet,
nothing is registered.
"""

from __future__ import annotations

import importlib.util

from .services import save_rubric_answers, validate_rubric_answers

if importlib.util.find_spec("annotate.services") is not None:
    from annotate import services as annotate_services
else:  # the workbench is not merged on this branch
    annotate_services = None


def register() -> None:
    validators = getattr(annotate_services, "answer_validators", None)
    savers = getattr(annotate_services, "answer_savers", None)
    if validators is not None and validate_rubric_answers not in validators:
        validators.append(validate_rubric_answers)
    if savers is not None and save_rubric_answers not in savers:
        savers.append(save_rubric_answers)
