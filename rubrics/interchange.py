"""A rubric as JSON or YAML: export one version, import it back as a new rubric (a draft, or published).

Document shape (both formats):
    {"format": "arbiter-rubric/1", "name": str, "description": str,
     "criteria": [{"key", "text", "guidance", "category", "weight", "answer_type"}, ...]}   # in order
Importing what was exported and exporting again gives the same document (keys, order and every field kept).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from django.db import transaction

from .models import KEY_HELP, KEY_RE, Rubric, RubricVersion, weight_error
from .services import ANSWER_TYPES, CATEGORIES, criterion_add, rubric_create, version_publish

FORMAT = "arbiter-rubric/1"
CRITERION_FIELDS = ["key", "text", "guidance", "category", "weight", "answer_type"]


class RubricFileError(ValueError):
    """What is wrong with a rubric file, each error naming where (`criteria[2].weight`)."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def rubric_document(version: RubricVersion) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": version.rubric.name,
        "description": version.rubric.description,
        "criteria": [
            {
                "key": c.key,
                "text": c.text,
                "guidance": c.guidance,
                "category": c.category,
                "weight": c.weight,
                "answer_type": c.answer_type,
            }
            for c in version.criteria.order_by("position", "id")
        ],
    }


def dump_rubric(version: RubricVersion, fmt: str = "json") -> str:
    document = rubric_document(version)
    if fmt == "json":
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    raise ValueError(f"format must be json or yaml, not {fmt!r}")


def parse_rubric(text: str, fmt: str = "json") -> dict[str, Any]:
    """Parse and check a rubric document; raises RubricFileError listing every problem."""
    try:
        document = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise RubricFileError([f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RubricFileError([f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"])
    errors: list[str] = []
    if not isinstance(document, dict):
        raise RubricFileError(["the file must hold one object (name, description, criteria)"])
    if document.get("format", FORMAT) != FORMAT:
        errors.append(f"format: {document.get('format')!r} is not {FORMAT!r}")
    unknown = sorted(set(document) - {"format", "name", "description", "criteria"})
    if unknown:
        errors.append(f"unknown field(s): {', '.join(unknown)}")
    if not isinstance(document.get("name"), str) or not document["name"].strip():
        errors.append("name: required, a non-empty string")
    if not isinstance(document.get("description", ""), str):
        errors.append("description: must be a string")
    criteria = document.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        errors.append("criteria: required, a non-empty list")
        criteria = []
    keys: set[str] = set()
    for i, c in enumerate(criteria):
        at = f"criteria[{i}]"
        if not isinstance(c, dict):
            errors.append(f"{at}: must be an object")
            continue
        extra = sorted(set(c) - set(CRITERION_FIELDS))
        if extra:
            errors.append(f"{at}: unknown field(s) {', '.join(extra)}")
        key = c.get("key")
        if not isinstance(key, str) or not KEY_RE.match(key):
            errors.append(f"{at}.key: {key!r} is not a valid key ({KEY_HELP})")
        elif key in keys:
            errors.append(f"{at}.key: {key!r} appears twice")
        else:
            keys.add(key)
        if not isinstance(c.get("text"), str) or not c["text"].strip():
            errors.append(f"{at}.text: required, a non-empty string")
        if not isinstance(c.get("guidance", ""), str):
            errors.append(f"{at}.guidance: must be a string")
        if c.get("category") not in CATEGORIES:
            errors.append(f"{at}.category: {c.get('category')!r} is not one of {', '.join(CATEGORIES)}")
        if "weight" in c:
            w = c["weight"]
            if isinstance(w, bool) or not isinstance(w, int | float):
                errors.append(f"{at}.weight: must be a number")
            elif c.get("category") in CATEGORIES and (message := weight_error(c["category"], float(w))):
                errors.append(f"{at}.weight: {message}")
        if c.get("answer_type", "yes_no") not in ANSWER_TYPES:
            errors.append(
                f"{at}.answer_type: {c.get('answer_type')!r} is not one of {', '.join(ANSWER_TYPES)}"
            )
    if errors:
        raise RubricFileError(errors)
    return document


@transaction.atomic
def import_rubric(text: str, fmt: str = "json", *, user=None, publish: bool = False) -> Rubric:
    """Create a new rubric from a document; its version 1 is a draft unless `publish`."""
    document = parse_rubric(text, fmt)
    rubric = rubric_create(name=document["name"], description=document.get("description", ""), user=user)
    version = rubric.versions.get()
    for c in document["criteria"]:
        criterion_add(
            version=version,
            key=c["key"],
            text=c["text"],
            guidance=c.get("guidance", ""),
            category=c["category"],
            weight=float(c["weight"]) if "weight" in c else None,
            answer_type=c.get("answer_type", "yes_no"),
        )
    if publish:
        version_publish(version=version, user=user)
    return rubric
