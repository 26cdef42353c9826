"""The ranking workbench's page parts: the cards' context and the form's answers. The views (annotate/views.py)
serve both kinds of project through the same URLs and call these for an item's assignment.

The form carries the ranking as one hidden field, `tiers` (JSON: lists of response ids, best first; the page's
script keeps it in step with the cards), `all_bad`, and per response `r<id>_safe`, `r<id>_harm_categories`,
`r<id>_severity` and the checklist's `rubric-<id>-<key>`: field names the pair page's draft and safety code
handle as they are.
"""

from __future__ import annotations

import re

import orjson

from annotate.models import Assignment, Comparison, Ranking, Severity
from annotate.rendering import render_markdown
from annotate.services import checklist_providers

RUBRIC_TEMPLATE = "rubrics/checklist.html"
SHORTCUTS = [
    ("1–9", "select response N (the number on its card)"),
    ("↑ / ↓", "move the selected response up / down"),
    ("t", "tie the selected response with the one above it / untie"),
    ("x", "all responses are bad (on / off)"),
    ("n / m", "the selected response is safe / unsafe"),
    ("j / k / l", "its severity: minor / moderate / severe"),
    ("g", "go to its harm categories (Tab, Space; Esc back)"),
    ("/", "write the justification (Esc back)"),
    ("r", "reveal blurred responses"),
    ("?", "show / hide the guidelines"),
    ("Ctrl+Enter", "submit (Enter too, outside a text box)"),
    ("Shift+S", "skip with a reason"),
]
_RESPONSE_FIELD = re.compile(r"^r(\d+)_(safe|harm_categories|severity)$")
_RUBRIC_FIELD = re.compile(r"^rubric-(\d+)-(.+)$")


def answers_from_post(post) -> dict:
    """The ranking answers of the workbench form (a QueryDict), in the service's shape (ranking_services)."""
    try:
        tiers = orjson.loads(post.get("tiers") or "null")
    except orjson.JSONDecodeError:
        tiers = None
    safety: dict[str, dict] = {}
    rubric: dict[str, dict[str, str]] = {}
    for name in post:
        if m := _RESPONSE_FIELD.match(name):
            rid, field = m.groups()
            value = post.getlist(name) if field == "harm_categories" else post.get(name)
            safety.setdefault(rid, {})[field] = value
        elif (m := _RUBRIC_FIELD.match(name)) and post.get(name):
            rubric.setdefault(m.group(1), {})[m.group(2)] = post.get(name)
    return {
        "tiers": tiers,
        "all_bad": post.get("all_bad") in ("on", "true", "1"),
        "safety": safety,
        "rubric": rubric,
        "justification": post.get("justification", ""),
        "time_spent_ms": post.get("time_spent_ms"),
    }


def form_fields(ranking: Ranking) -> dict:
    """A stored ranking's answers as the form's fields, to prefill a revision."""
    data: dict = {"tiers": orjson.dumps(ranking.tiers).decode(), "justification": ranking.justification}
    if ranking.all_bad:
        data["all_bad"] = "on"
    for rid, given in ranking.safety.items():
        if given.get("safe") is not None:
            data[f"r{rid}_safe"] = "safe" if given["safe"] else "unsafe"
            data[f"r{rid}_harm_categories"] = given.get("harm_categories") or []
            data[f"r{rid}_severity"] = given.get("severity") or ""
    return data


def _checklist(assignment: Assignment) -> list:
    # The checklist is the item's (the project's rubric, then the item's criteria): the same for every pair.
    stand_in = Comparison(project=assignment.project, item=assignment.item)
    return [line for provider in checklist_providers for line in provider(stand_in)]


def cards_context(assignment: Assignment, draft: dict | None, errors: dict) -> dict:
    """The ranking's cards in display order (numbered 1…K as shown) with their errors, and the checklist."""
    texts = {r.pk: r.text for r in assignment.item.responses.only("pk", "text")}
    draft = draft or {}
    criteria = _checklist(assignment)
    cards = []
    for number, rid in enumerate(assignment.display_order, start=1):
        error_safe = errors.get(f"safety.{rid}.safe", "")
        error_cats = errors.get(f"safety.{rid}.harm_categories", "")
        error_sev = errors.get(f"safety.{rid}.severity", "")
        if draft.get(f"r{rid}_safe") == "safe" and (error_cats or error_sev):
            # Hidden while "safe" is chosen: shown beside the question instead (as on the pair page).
            error_safe = " ".join(e for e in (error_cats, error_sev) if e)
            error_cats = error_sev = ""
        cards.append(
            {
                "rid": rid,
                "side": str(rid),
                "prefix": f"r{rid}",  # the safety fields' names: r<id>_safe, …  # the checklist's field names: rubric-<id>-<key>
                "number": number,
                "html": render_markdown(texts.get(rid, "")),
                "error_safe": error_safe,
                "error_cats": error_cats,
                "error_sev": error_sev,
                "rubric_answers": {
                    name.split("-", 2)[2]: value
                    for name, value in draft.items()
                    if name.startswith(f"rubric-{rid}-") and isinstance(value, str)
                },
            }
        )
    shown = {"tiers", "all_bad", "justification"} | {
        key for key in errors if key.startswith(("safety.", "rubric-"))
    }
    return {
        "ranking": True,
        "cards": cards,
        "severities": [
            (value, label, key) for (value, label), key in zip(Severity.choices, "jkl", strict=True)
        ],
        "shortcuts": SHORTCUTS,
        "other_errors": [(k, v) for k, v in errors.items() if k not in shown],
        "rubric_template": RUBRIC_TEMPLATE if criteria else None,
        "rubric_criteria": criteria,
        "rubric_errors": errors,
    }


def gold_feedback(ranking: Ranking, right: int, total: int) -> dict | None:
    if not ranking.is_gold or not ranking.project.show_gold_feedback or not total:
        return None
    return {"ranking": True, "right": right, "total": total, "correct": right == total}
