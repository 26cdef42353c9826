"""Rankings, the pure part: checking a ranking's tiers and the pairwise preferences a ranking implies.

No Django here: the ranking service (annotate/ranking_services.py) and the ranking agreement and training code
call these with plain lists.

A ranking is a list of tiers, best first; each tier is a list of response ids, tied with each other. Every
response shown appears in exactly one tier.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

MIN_RESPONSES = 3
MAX_RESPONSES = 9


def tiers_problem(tiers, shown: Iterable[int]) -> str:
    """Why `tiers` is not a ranking of exactly the responses `shown` ('' when it is)."""
    if not isinstance(tiers, list) or not tiers:
        return "Give the ranking as a list of tiers, best first, each a list of response ids."
    seen: list[int] = []
    for number, tier in enumerate(tiers, start=1):
        if not isinstance(tier, list) or not tier:
            return f"Tier {number} is not a non-empty list of response ids."
        for rid in tier:
            if not isinstance(rid, int) or isinstance(rid, bool):
                return f"Tier {number}: {rid!r} is not a response id."
            seen.append(rid)
    wanted = set(shown)
    duplicates = sorted({rid for rid in seen if seen.count(rid) > 1})
    if duplicates:
        return "Each response appears once; listed more than once: " + ", ".join(map(str, duplicates))
    unknown = sorted(set(seen) - wanted)
    if unknown:
        return "Not a response of this item: " + ", ".join(map(str, unknown))
    missing = sorted(wanted - set(seen))
    if missing:
        return "Rank every response; missing: " + ", ".join(map(str, missing))
    return ""


def implied_pairs(tiers: Sequence[Sequence[int]]) -> list[tuple[int, int, str]]:
    """Every pair of the ranked responses once, as (x, y, outcome) with x ranked at or above y.

    outcome is "a" when x is ranked strictly better than y (x in an earlier tier), "tie" when they share a
    tier; "b" never occurs, since x is always the better-or-equal one. To store it on a comparison, read "a"
    as "x is better": on a comparison whose response A is y, flip it to "b". Pairs come in tier order (x's tier,
    then x's place in it, then y's). K responses give K·(K−1)/2 pairs.
    """
    order = [(rank, rid) for rank, tier in enumerate(tiers) for rid in tier]
    return [(x, y, "tie" if rx == ry else "a") for (rx, x), (ry, y) in combinations(order, 2)]


def outcome_for(pair: tuple[int, int, str], response_a: int) -> str:
    """An implied pair's outcome relative to a comparison whose response A is `response_a`: a / b / tie."""
    x, _y, outcome = pair
    if outcome == "tie" or x == response_a:
        return outcome
    return "b"
