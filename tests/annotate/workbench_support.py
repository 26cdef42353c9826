"""Shared bits of the workbench tests: a complete safe answer, and flipping it to the other side."""

from __future__ import annotations

SAFE_ANSWERS = {
    "preference": "-2",  # shown-relative: the LEFT response is better
    "helpfulness": "left",
    "harmlessness": "tie",
    "left_safe": "safe",
    "right_safe": "safe",
    "justification": "Left answers the question.",
}


def answers(**changes) -> dict:
    return SAFE_ANSWERS | changes
