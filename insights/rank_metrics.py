"""Agreement of rankings (K responses to one prompt ranked best first, ties allowed), over numpy arrays.

No Django, as `metrics.py`: the web layer turns rankings into a `Rankings` (via `Rankings.from_tiers`) and
gets floats back. Three figures, each with a percentile bootstrap interval that resamples items (a drawn
item brings every ranking of it, and all of its responses):

- `kendall_w`: Kendall's coefficient of concordance with the tie correction, per item over the raters who
  ranked all of its responses, averaged over the items where it is defined;
- `alpha_ordinal`: Krippendorff's alpha, ordinal, with units (item, response) and values the mid-ranks;
- `pairwise_agreement`: over every item, rater pair and response pair, the share where both raters order
  the two responses the same way (a tie with a tie agreeing).

Definitions, and why each equals its reference, are in `metrics.md` ("Rankings").
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from insights import metrics as M

RANK_METRICS: tuple[str, ...] = ("kendall_w", "alpha_ordinal", "pairwise_agreement")


def mid_ranks(tiers: Sequence[Sequence[Hashable]]) -> list[tuple[Hashable, float]]:
    """(response, rank) for tiers best first: tier t's members share the mean of the positions they take
    (scipy.stats.rankdata's "average" method), so [[a], [b, c], [d]] gives a 1, b 2.5, c 2.5, d 4."""
    out = []
    start = 0
    for tier in tiers:
        rank = start + (len(tier) + 1) / 2
        out.extend((response, rank) for response in tier)
        start += len(tier)
    return out


@dataclass(frozen=True, eq=False)
class Rankings:
    """Rankings as rows: rater `rater[i]` gave response `response[i]` of item `unit[i]` the mid-rank
    `rank[i]` (1 = best). Each response belongs to one item; a (rater, response) pair appears once.
    `n_units` is every item of the index (rated or not): the bootstrap resamples them."""

    unit: np.ndarray
    rater: np.ndarray
    response: np.ndarray
    rank: np.ndarray
    n_units: int
    n_raters: int
    n_responses: int

    def __post_init__(self) -> None:
        arrays = [np.asarray(getattr(self, name)) for name in ("unit", "rater", "response")]
        unit, rater, response = (a.astype(np.int64, copy=False) for a in arrays)
        rank = np.asarray(self.rank, dtype=np.float64)
        if not unit.size == rater.size == response.size == rank.size:
            raise ValueError("unit, rater, response and rank must have the same length")
        for a, bound, name in (
            (unit, self.n_units, "unit"),
            (rater, self.n_raters, "rater"),
            (response, self.n_responses, "response"),
        ):
            if a.size and (a.min() < 0 or a.max() >= bound):
                raise ValueError(f"{name} codes must lie in 0..{bound - 1}")
        if unit.size:
            owner = np.full(self.n_responses, -1, dtype=np.int64)
            owner[response] = unit
            if not np.array_equal(owner[response], unit):
                raise ValueError("a response belongs to more than one unit")
            keys = rater * self.n_responses + response
            if np.unique(keys).size != keys.size:
                raise ValueError("a (rater, response) pair appears more than once")
            if not np.array_equal(rank * 2, np.rint(rank * 2)) or rank.min() < 1:
                raise ValueError("ranks must be mid-ranks: multiples of 0.5, at least 1")
        for name, value in (("unit", unit), ("rater", rater), ("response", response), ("rank", rank)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_tiers(
        cls,
        rows: Iterable[tuple[Hashable, Hashable, Sequence[Sequence[Hashable]]]],
        *,
        units: Sequence[Hashable] | None = None,
    ) -> tuple[Rankings, list[Hashable], list[Hashable]]:
        """Build from (unit key, rater key, tiers best first) rows; responses are keyed globally.

        Units are numbered by their position in `units` when given (an unknown key is then an error), else in
        first-seen order; raters in first-seen order. Returns the rankings, the unit keys and the rater keys.
        """
        unit_index = {k: i for i, k in enumerate(units)} if units is not None else {}
        rater_index: dict[Hashable, int] = {}
        response_index: dict[Hashable, int] = {}
        u, r, s, k = [], [], [], []
        for unit_key, rater_key, tiers in rows:
            if unit_key not in unit_index:
                if units is not None:
                    raise ValueError(f"unknown unit {unit_key!r}")
                unit_index[unit_key] = len(unit_index)
            code = unit_index[unit_key]
            rater = rater_index.setdefault(rater_key, len(rater_index))
            for response, rank in mid_ranks(tiers):
                u.append(code)
                r.append(rater)
                s.append(response_index.setdefault(response, len(response_index)))
                k.append(rank)
        rankings = cls(
            np.array(u, dtype=np.int64),
            np.array(r, dtype=np.int64),
            np.array(s, dtype=np.int64),
            np.array(k, dtype=np.float64),
            n_units=len(unit_index),
            n_raters=len(rater_index),
            n_responses=len(response_index),
        )
        return rankings, list(unit_index), list(rater_index)


# --- per-unit statistics ------------------------------------------------------------------------------


def _owner(r: Rankings) -> np.ndarray:
    """(n_responses,) the item of each response (0 for a response nobody ranked)."""
    owner = np.zeros(r.n_responses, dtype=np.int64)
    owner[r.response] = r.unit
    return owner


def kendall_w_units(r: Rankings) -> np.ndarray:
    """(n_units,) Kendall's W of each item; NaN where undefined.

    Over the m raters who ranked all n of the item's responses (those anyone ranked), with rank sums R_j:
    W = 12 S / (m²(n³ − n) − m Σ T), S = Σ_j (R_j − m(n + 1)/2)², T = Σ (t³ − t) over each rater's tied groups
    of size t. Equals χ² / (m(n − 1)) with χ² scipy.stats.friedmanchisquare's (tie-corrected) statistic.
    Undefined with fewer than 2 such raters or responses, or when every one of them tied everything."""
    units = r.n_units
    out = np.full(units, np.nan)
    if not r.unit.size:
        return out
    owner = _owner(r)
    ranked = np.zeros(r.n_responses, dtype=bool)
    ranked[r.response] = True
    n = np.bincount(owner[ranked], minlength=units).astype(np.float64)
    # One ranking per (unit, rater): complete when it ranks all n of the unit's responses.
    ranking_ids, ranking_of = np.unique(r.unit * r.n_raters + r.rater, return_inverse=True)
    size = np.bincount(ranking_of)
    ranking_unit = ranking_ids // max(r.n_raters, 1)
    complete_ranking = size == n[ranking_unit]
    keep = complete_ranking[ranking_of]
    m = np.bincount(ranking_unit[complete_ranking], minlength=units).astype(np.float64)
    sums = np.bincount(r.response[keep], weights=r.rank[keep], minlength=r.n_responses)
    expected = m[owner] * (n[owner] + 1) / 2.0
    s = np.bincount(owner[ranked], weights=((sums - expected) ** 2)[ranked], minlength=units)
    # Tied groups: rows of one complete ranking with the same mid-rank.
    width = 2 * r.n_responses + 2  # twice a mid-rank is an integer below this
    groups, t = np.unique(
        ranking_of[keep] * width + np.rint(2 * r.rank[keep]).astype(np.int64), return_counts=True
    )
    group_unit = ranking_unit[groups // width]
    ties = np.bincount(group_unit, weights=(t**3 - t).astype(np.float64), minlength=units)
    denominator = m * m * (n**3 - n) - m * ties
    ok = (m >= 2) & (n >= 2) & (denominator > 0)
    out[ok] = 12.0 * s[ok] / denominator[ok]
    return out


def _within_ranking_pairs(r: Rankings) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (i, j) of every pair of responses within one rater's ranking of a unit, response[i] <
    response[j]: K(K − 1)/2 per ranking of K."""
    order = np.lexsort((r.response, r.rater, r.unit))
    key = (r.unit * r.n_raters + r.rater)[order]
    starts = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    ends = np.r_[starts[1:], key.size]
    group_end = np.repeat(ends, ends - starts)
    after = group_end - np.arange(key.size) - 1  # rows after each one in its ranking
    left = np.repeat(np.arange(key.size), after)
    first = np.cumsum(after) - after  # where each row's run of partners starts in `left`
    right = left + 1 + np.arange(left.size) - np.repeat(first, after)
    return order[left], order[right]


def pairwise_counts(r: Rankings) -> tuple[np.ndarray, np.ndarray]:
    """(agreeing, compared) per unit, int arrays: over rater pairs and the response pairs both ranked, how
    many give the two responses the same order (better, tie or worse) and how many were compared."""
    agree = np.zeros(r.n_units, dtype=np.int64)
    total = np.zeros(r.n_units, dtype=np.int64)
    if not r.unit.size:
        return agree, total
    i, j = _within_ranking_pairs(r)
    relation = np.sign(r.rank[i] - r.rank[j]).astype(np.int64) + 1  # 0 better, 1 tie, 2 worse
    pair_ids, pair_of = np.unique(r.response[i] * r.n_responses + r.response[j], return_inverse=True)
    counts = np.bincount(pair_of * 3 + relation, minlength=3 * pair_ids.size).reshape(-1, 3)
    both = counts.sum(axis=1)
    pair_unit = _owner(r)[pair_ids // r.n_responses]
    agree += np.bincount(
        pair_unit, weights=(counts * (counts - 1) // 2).sum(axis=1), minlength=r.n_units
    ).astype(np.int64)
    total += np.bincount(pair_unit, weights=both * (both - 1) // 2, minlength=r.n_units).astype(np.int64)
    return agree, total


def rank_ratings(r: Rankings) -> tuple[M.Ratings, np.ndarray]:
    """The ranks as an ordinal `metrics.Ratings` on units (responses), values the distinct mid-ranks in
    order (unused ranks are left out: the ordinal metric gives a value nobody used no weight), and each
    response's item."""
    values, codes = np.unique(r.rank, return_inverse=True)
    ratings = M.Ratings(
        r.response,
        r.rater,
        codes.astype(np.int64),
        n_categories=max(values.size, 1),
        n_units=r.n_responses,
        n_raters=r.n_raters,
    )
    return ratings, _owner(r)


# --- figures --------------------------------------------------------------------------------------------


def kendall_w(r: Rankings) -> float | None:
    """Mean of the items' Kendall's W where defined; None when no item has it."""
    w = kendall_w_units(r)
    w = w[np.isfinite(w)]
    return float(w.mean()) if w.size else None


def alpha_ordinal(r: Rankings) -> float | None:
    """Krippendorff's ordinal alpha on the mid-ranks, units (item, response): the `krippendorff` package's
    `alpha(rater x response matrix of ranks, level_of_measurement="ordinal")`."""
    ratings, _ = rank_ratings(r)
    return M.krippendorff_alpha(ratings, "ordinal")


def pairwise_agreement(r: Rankings) -> float | None:
    agree, total = pairwise_counts(r)
    n = int(total.sum())
    return agree.sum() / n if n else None


def _stats(r: Rankings) -> tuple[Any, np.ndarray]:
    """Per item, every figure's sufficient statistics: [W·d, d, agreeing, compared, ordinal alpha's
    statistics summed over the item's responses]; and the alpha layout."""
    w = kendall_w_units(r)
    defined = np.isfinite(w)
    agree, total = pairwise_counts(r)
    ratings, owner = rank_ratings(r)
    layout, per_response = M.unit_stats(ratings, ordinal=True)
    per_item = np.zeros((r.n_units, per_response.shape[1]))
    np.add.at(per_item, owner, per_response)
    head = np.column_stack([np.where(defined, w, 0.0), defined, agree, total])
    return layout, np.hstack([head, per_item])


def _values(agg: np.ndarray, layout: Any) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "kendall_w": np.where(agg[:, 1] > 0, agg[:, 0] / np.where(agg[:, 1] > 0, agg[:, 1], 1), np.nan),
            "pairwise_agreement": np.where(
                agg[:, 3] > 0, agg[:, 2] / np.where(agg[:, 3] > 0, agg[:, 3], 1), np.nan
            ),
            "alpha_ordinal": M.metric_values(agg[:, 4:], layout, "alpha_ordinal"),
        }


def ranking_figures(
    r: Rankings, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, Any]:
    """Every ranking figure with its percentile bootstrap interval over resamples of the `n_units` items
    (the draws of `metrics.bootstrap_weights(n_units, n_resamples, seed)`; undefined resamples dropped):
    "rankings", "rated_units" (items with a ranking), "pairable_units" (items with two), each figure of
    `RANK_METRICS` (None when undefined) and "ci": {figure: [lo, hi] | None}."""
    layout, stats = _stats(r)
    total = _values(stats.sum(axis=0, keepdims=True), layout)
    resampled = _values(M.resampled_stats(stats, n_resamples, seed), layout)
    per_item = np.bincount(np.unique(r.unit * max(r.n_raters, 1) + r.rater) // max(r.n_raters, 1),
                           minlength=r.n_units)  # fmt: skip
    out: dict[str, Any] = {
        "rankings": int(per_item.sum()),
        "rated_units": int(np.count_nonzero(per_item >= 1)),
        "pairable_units": int(np.count_nonzero(per_item >= 2)),
    }
    ci: dict[str, list[float] | None] = {}
    for name in RANK_METRICS:
        value = float(total[name][0])
        out[name] = value if np.isfinite(value) else None
        bounds = M.percentile_interval(resampled[name], level)
        ci[name] = None if bounds is None else [bounds[0], bounds[1]]
    out["ci"] = ci
    return out
