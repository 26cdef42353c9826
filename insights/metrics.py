"""Agreement, annotator and margin figures as plain functions over numpy arrays.

Nothing here imports Django: the web layer turns judgments into `Ratings` and per-comparison arrays
and gets floats, tuples, lists and arrays back. Definitions, the fast bootstrap and why it equals
resampling are in `metrics.md` next to this file.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, get_args

import numpy as np
from scipy.special import expit

# Choice codes (A / tie / B) relative to the comparison's canonical order.
A, TIE, B = 0, 1, 2
NO_CONSENSUS = -1

Level = Literal["nominal", "ordinal", "interval"]
Metric = Literal[
    "percent_agreement",
    "alpha_nominal",
    "alpha_ordinal",
    "alpha_interval",
    "fleiss_kappa",
    "gwet_ac1",
    "gwet_ac2",
]
METRICS: tuple[str, ...] = get_args(Metric)
# The figures of a nominal question, and those an ordinal one (the 7-point preference) adds.
NOMINAL_METRICS: tuple[str, ...] = ("percent_agreement", "alpha_nominal", "fleiss_kappa", "gwet_ac1")
ORDINAL_METRICS: tuple[str, ...] = ("alpha_ordinal", "alpha_interval", "gwet_ac2")

# Resamples drawn at once: at most _CHUNK, and few enough that a chunk's draws and weights stay within
# _CHUNK_BYTES, so memory does not grow with the number of units (250 resamples of 333,333 units as int64
# draws and float32 weights took 1 GB).
_CHUNK = 250
_CHUNK_BYTES = 64 * 2**20
# Every statistic is a non-negative integer, so a float32 product is exact while no sum can reach 2**24.
_F32_LIMIT = 2**24
# Largest common multiple of (size - 1) used to keep the ordinal and interval statistics integers.
_MAX_SCALE = 2**20
# Rater pairs x categories^2 up to which Cohen's confusion matrices are counted in one dense array.
_DENSE_PAIRS = 4_000_000


@dataclass(frozen=True, eq=False)
class Ratings:
    """One question's answers: row i says rater `rater[i]` gave category `value[i]` to unit `unit[i]`.

    Units are comparisons (0..n_units-1), raters annotators (0..n_raters-1), values category codes
    (0..n_categories-1, in scale order for ordinal questions). A missing answer is an absent row; a
    (unit, rater) pair appears at most once. `n_units` / `n_raters` default to the largest code + 1;
    pass them to keep every question of a project on the same index (the bootstrap resamples
    `n_units` comparisons, so questions that share it share the resamples).
    """

    unit: np.ndarray
    rater: np.ndarray
    value: np.ndarray
    n_categories: int
    n_units: int = -1
    n_raters: int = -1

    def __post_init__(self) -> None:
        arrays = []
        for name in ("unit", "rater", "value"):
            a = np.asarray(getattr(self, name))
            if a.ndim != 1:
                raise ValueError(f"{name} must be one-dimensional")
            if a.size and a.dtype.kind not in "iub":
                raise ValueError(f"{name} must hold integer codes, not {a.dtype}")
            arrays.append(a.astype(np.int64, copy=False))
        unit, rater, value = arrays
        if not unit.size == rater.size == value.size:
            raise ValueError("unit, rater and value must have the same length")
        n_units = self.n_units if self.n_units >= 0 else int(unit.max()) + 1 if unit.size else 0
        n_raters = self.n_raters if self.n_raters >= 0 else int(rater.max()) + 1 if rater.size else 0
        if self.n_categories < 1:
            raise ValueError("n_categories must be at least 1")
        for a, bound, name in (
            (unit, n_units, "unit"),
            (rater, n_raters, "rater"),
            (value, self.n_categories, "value"),
        ):
            if a.size and (a.min() < 0 or a.max() >= bound):
                raise ValueError(f"{name} codes must lie in 0..{bound - 1}")
        if unit.size and _has_duplicates(unit * n_raters + rater, n_units * n_raters):
            raise ValueError("a (unit, rater) pair appears more than once; pass the latest revision only")
        object.__setattr__(self, "unit", unit)
        object.__setattr__(self, "rater", rater)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "n_units", n_units)
        object.__setattr__(self, "n_raters", n_raters)

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[tuple[Hashable, Hashable, Any]],
        categories: Sequence,
        *,
        units: Sequence[Hashable] | None = None,
        raters: Sequence[Hashable] | None = None,
    ) -> tuple[Ratings, list[Hashable], list[Hashable]]:
        """Build from (unit_key, rater_key, value) rows; a value of None is a missing answer.

        Values are coded by their position in `categories`. Keys are numbered in first-seen order,
        or by their position in `units` / `raters` when given (then an unknown key is an error).
        Returns the ratings and the unit and rater keys in code order.
        """
        code = {c: i for i, c in enumerate(categories)}
        unit_index: dict[Hashable, int] = {k: i for i, k in enumerate(units)} if units is not None else {}
        rater_index: dict[Hashable, int] = {k: i for i, k in enumerate(raters)} if raters is not None else {}
        u_codes: list[int] = []
        r_codes: list[int] = []
        v_codes: list[int] = []
        for unit_key, rater_key, value in rows:
            if value is None:
                continue
            if value not in code:
                raise ValueError(f"unknown category {value!r}")
            u_codes.append(_index(unit_index, unit_key, fixed=units is not None, what="unit"))
            r_codes.append(_index(rater_index, rater_key, fixed=raters is not None, what="rater"))
            v_codes.append(code[value])
        ratings = cls(
            np.array(u_codes, dtype=np.int64),
            np.array(r_codes, dtype=np.int64),
            np.array(v_codes, dtype=np.int64),
            n_categories=len(categories),
            n_units=len(unit_index),
            n_raters=len(rater_index),
        )
        return ratings, list(unit_index), list(rater_index)

    @cached_property
    def counts(self) -> np.ndarray:
        """(n_units, n_categories) int array: how many raters gave each category to each unit."""
        c = self.n_categories
        flat = np.bincount(self.unit * c + self.value, minlength=self.n_units * c)
        return flat.reshape(self.n_units, c)

    @cached_property
    def sizes(self) -> np.ndarray:
        """(n_units,) int array: ratings per unit."""
        return np.bincount(self.unit, minlength=self.n_units)


def _index(index: dict[Hashable, int], key: Hashable, *, fixed: bool, what: str) -> int:
    if key not in index:
        if fixed:
            raise ValueError(f"unknown {what} {key!r}")
        index[key] = len(index)
    return index[key]


def _has_duplicates(keys: np.ndarray, n_keys: int) -> bool:
    if n_keys <= 64 * keys.size + 1_000_000:
        seen = np.zeros(n_keys, dtype=bool)
        seen[keys] = True
        return int(np.count_nonzero(seen)) != keys.size
    s = np.sort(keys)
    return bool((s[1:] == s[:-1]).any())


# --- sufficient statistics -------------------------------------------------------------------------
#
# Every agreement figure here is a function of a few sums over units. Per unit u with m_u >= 2 ratings
# and category counts n_uc we keep, in the block of its size s = m_u:
#   T_sc = n_uc (the unit's contribution to the category totals), Q_s = sum_c n_uc^2,
# and, when asked, the off-diagonal coincidences n_uc n_uc' L / (m_u - 1) (ordinal alpha) and
# sum_cc' n_uc n_uc' (c - c')^2 L / (m_u - 1) (interval alpha), where L, the least common multiple of
# the (s - 1), keeps them integers. Summing the rows with weights gives the figures for any multiset
# of units, so a bootstrap resample is one weight vector.


@dataclass(frozen=True)
class _Layout:
    sizes: np.ndarray  # the distinct unit sizes >= 2, ascending
    n_categories: int
    ordinal: bool
    interval: bool
    scale: float  # L above (1.0 when it would be too large: the statistics are then not integers)
    # The chance-agreement shares of Fleiss' (generalised) kappa and Gwet's AC1 / AC2 need every rated unit:
    # the blocks above hold the units with >= 2 ratings, `singles` adds the category counts of the units with
    # one rating (when there are any). With `weighted`, one more column: sum_u sum_cc' n_uc n_uc' (c - c')^2
    # L2 / (m_u (m_u - 1)) over pairable units (L2 = lcm of the m_u (m_u - 1)), the weighted disagreement AC2 needs.
    singles: bool = False
    weighted: bool = False
    weight_scale: float = 1.0

    @property
    def n_pairs(self) -> int:
        c = self.n_categories
        return c * (c - 1) // 2 if self.ordinal else 0

    @property
    def interval_col(self) -> int:
        return len(self.sizes) * (self.n_categories + 1) + self.n_pairs

    @property
    def chance_start(self) -> int:
        return self.interval_col + int(self.interval)

    @property
    def width(self) -> int:
        return self.chance_start + self.n_categories * int(self.singles) + int(self.weighted)


def unit_stats(
    r: Ratings, *, ordinal: bool = False, interval: bool = False, weighted: bool = False
) -> tuple[_Layout, np.ndarray]:
    """Per-unit sufficient statistics, an (n_units, width) float64 matrix, and its layout."""
    return _count_stats(r.counts, ordinal=ordinal, interval=interval, weighted=weighted)


def _lcm_scale(values: Iterable[int]) -> float:
    scale = math.lcm(*values)
    return float(scale) if scale <= _MAX_SCALE else 1.0


def _count_stats(
    counts: np.ndarray, *, ordinal: bool = False, interval: bool = False, weighted: bool = False
) -> tuple[_Layout, np.ndarray]:
    """The sufficient statistics of units given by their category counts (rows of `counts`)."""
    m = counts.sum(axis=1)
    c = counts.shape[1]
    sizes = np.unique(m[m >= 2])
    single = m == 1
    layout = _Layout(
        sizes,
        c,
        ordinal,
        interval,
        _lcm_scale(int(s) - 1 for s in sizes),
        bool(single.any()),
        weighted,
        _lcm_scale(int(s) * (int(s) - 1) for s in sizes),
    )
    stats = np.zeros((len(counts), layout.width))
    q = np.einsum("uc,uc->u", counts, counts)
    for k, s in enumerate(sizes):
        rows = m == s
        stats[rows, k * (c + 1) : k * (c + 1) + c] = counts[rows]
        stats[rows, k * (c + 1) + c] = q[rows]
    col = len(sizes) * (c + 1)
    pairable = m >= 2
    inv = np.zeros(len(counts))
    inv[pairable] = layout.scale / (m[pairable] - 1)
    if ordinal:
        i, j = np.triu_indices(c, 1)
        stats[:, col : col + len(i)] = counts[:, i] * counts[:, j] * inv[:, None]
        col += len(i)
    codes = np.arange(c, dtype=np.float64)
    # sum_cc' n_uc n_uc' (c - c')^2 per unit: the squared-distance disagreement of its rating pairs (x 2)
    squared = 2.0 * (m * (counts @ codes**2) - (counts @ codes) ** 2) if interval or weighted else None
    if interval:
        stats[:, col] = squared * inv
        col += 1
    if layout.singles:
        stats[single, col : col + c] = counts[single]
        col += c
    if weighted:
        stats[pairable, col] = squared[pairable] * layout.weight_scale / (m[pairable] * (m[pairable] - 1))
    return layout, stats


def _blocks(agg: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split aggregated statistics (batch, width) into T (batch, S, C), Q (batch, S), N (batch, S), s (S,)."""
    c = layout.n_categories
    s_count = len(layout.sizes)
    blocks = agg[:, : s_count * (c + 1)].reshape(agg.shape[0], s_count, c + 1)
    t, q = blocks[..., :c], blocks[..., c]
    s = layout.sizes.astype(np.float64)
    n = t.sum(axis=-1) / s
    return t, q, n, s


def _safe_ratio(num: np.ndarray, den: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=ok)
    return out


def _percent_agreement(agg: np.ndarray, layout: _Layout) -> np.ndarray:
    t, q, n, s = _blocks(agg, layout)
    agreeing = ((q - s * n) / (s * (s - 1))).sum(axis=-1)
    units = n.sum(axis=-1)
    return _safe_ratio(agreeing, units, units > 0)


def _alpha(agg: np.ndarray, layout: _Layout, level: str) -> np.ndarray:
    t, q, n, s = _blocks(agg, layout)
    n_c = t.sum(axis=1)  # pairable values per category
    total = n_c.sum(axis=-1)
    c = layout.n_categories
    if level == "nominal":
        observed = ((s**2 * n - q) / (s - 1)).sum(axis=-1)
        expected = (total**2 - (n_c**2).sum(axis=-1)) / np.maximum(total - 1, 1)
    elif level == "ordinal":
        if not layout.ordinal:
            raise ValueError("layout lacks the ordinal coincidences")
        i, j = np.triu_indices(c, 1)
        start = len(layout.sizes) * (c + 1)
        o = agg[:, start : start + len(i)] / layout.scale
        cum = np.cumsum(n_c, axis=-1)
        between = cum[:, j] - cum[:, i] + n_c[:, i]  # sum of n_g for g in i..j
        d = (between - (n_c[:, i] + n_c[:, j]) / 2.0) ** 2
        observed = 2.0 * (o * d).sum(axis=-1)
        expected = 2.0 * (n_c[:, i] * n_c[:, j] * d).sum(axis=-1) / np.maximum(total - 1, 1)
    elif level == "interval":
        if not layout.interval:
            raise ValueError("layout lacks the interval disagreement")
        observed = agg[:, layout.interval_col] / layout.scale
        codes = np.arange(c, dtype=np.float64)
        expected = 2.0 * (total * (n_c @ codes**2) - (n_c @ codes) ** 2) / np.maximum(total - 1, 1)
    else:
        raise ValueError(f"unknown level {level!r}")
    ok = (total >= 2) & (expected > 0) & (c >= 2)
    return 1.0 - _safe_ratio(observed, expected, ok)


def _chance_corrected(agg: np.ndarray, layout: _Layout, metric: str) -> np.ndarray:
    """Fleiss' kappa generalised to any number of ratings per unit, and Gwet's AC1 / AC2, as `irrCAC`
    computes them (Gwet 2014): over the units with >= 2 ratings p_a = mean of the unit's share of agreeing
    rating pairs (AC2: weighted by w_cc' = 1 - (c - c')^2 / (C - 1)^2); over every rated unit
    pi_c = mean of n_uc / m_u; Fleiss p_e = sum_c pi_c^2, AC1 / AC2 p_e = sum(w) / (C (C - 1)) sum_c pi_c (1 - pi_c);
    coefficient = (p_a - p_e) / (1 - p_e). NaN where no unit has two ratings, or p_e = 1."""
    t, q, n, s = _blocks(agg, layout)
    c = layout.n_categories
    pairable = n.sum(axis=-1)
    ok_units = np.where(pairable > 0, pairable, 1.0)
    start = layout.chance_start
    shares = (t / s[None, :, None]).sum(axis=1)  # sum over rated units of n_uc / m_u, c by c
    rated = pairable.copy()
    if layout.singles:
        shares = shares + agg[:, start : start + c]
        rated = rated + agg[:, start : start + c].sum(axis=-1)
        start += c
    pi = shares / np.where(rated > 0, rated, 1.0)[:, None]
    if metric == "gwet_ac2":
        if not layout.weighted:
            raise ValueError("layout lacks the weighted disagreement")
        p_a = 1.0 - agg[:, start] / layout.weight_scale / max(c - 1, 1) ** 2 / ok_units
        codes = np.arange(c, dtype=np.float64)
        w_sum = float((1.0 - (codes[:, None] - codes[None, :]) ** 2 / max(c - 1, 1) ** 2).sum())
    else:
        p_a = 1.0 - ((s**2 * n - q) / (s * (s - 1))).sum(axis=-1) / ok_units
        w_sum = float(c)
    if metric == "fleiss_kappa":
        p_e = (pi**2).sum(axis=-1)
    else:
        p_e = w_sum / max(c * (c - 1), 1) * (pi * (1.0 - pi)).sum(axis=-1)
    out = np.full(agg.shape[0], np.nan)
    ok = (pairable > 0) & (rated > 0) & (p_e < 1.0) & (c >= 2)
    np.divide(p_a - p_e, 1.0 - p_e, out=out, where=ok)
    return out


def metric_values(agg: np.ndarray, layout: _Layout, metric: str) -> np.ndarray:
    if metric == "percent_agreement":
        return _percent_agreement(agg, layout)
    if metric in ("fleiss_kappa", "gwet_ac1", "gwet_ac2"):
        return _chance_corrected(agg, layout, metric)
    if metric.startswith("alpha_"):
        return _alpha(agg, layout, metric.removeprefix("alpha_"))
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _as_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _stats_for(r: Ratings, metric: str) -> tuple[_Layout, np.ndarray]:
    return unit_stats(
        r,
        ordinal=metric == "alpha_ordinal",
        interval=metric == "alpha_interval",
        weighted=metric == "gwet_ac2",
    )


def _point(r: Ratings, metric: str) -> float | None:
    layout, stats = _stats_for(r, metric)
    return _as_float(metric_values(stats.sum(axis=0, keepdims=True), layout, metric)[0])


# --- agreement figures ------------------------------------------------------------------------------


def percent_agreement(r: Ratings) -> float | None:
    """Mean over units with >= 2 ratings of the share of agreeing rater pairs in the unit."""
    return _point(r, "percent_agreement")


def krippendorff_alpha(r: Ratings, level: Level = "nominal") -> float | None:
    """Krippendorff's alpha from the coincidence matrix over the value domain 0..n_categories-1.

    None where undefined: fewer than two categories, no unit with two ratings, or no expected
    disagreement (every pairable value in one category).
    """
    return _point(r, f"alpha_{level}")


def fleiss_kappa(r: Ratings) -> float | None:
    """Fleiss' kappa generalised to varying numbers of ratings per unit (every unit counts; as `irrCAC`'s
    `CAC.fleiss()`; with the same number of ratings on every unit, statsmodels' `fleiss_kappa`)."""
    return _point(r, "fleiss_kappa")


def gwet_ac1(r: Ratings) -> float | None:
    """Gwet's AC1 (nominal), as `irrCAC`'s `CAC.gwet()` with the value domain 0..n_categories-1."""
    return _point(r, "gwet_ac1")


def gwet_ac2(r: Ratings) -> float | None:
    """Gwet's AC2 with quadratic weights 1 - (c - c')^2 / (C - 1)^2, as `irrCAC`'s `CAC(weights="quadratic").gwet()`."""
    return _point(r, "gwet_ac2")


def cohen_kappa_pairs(
    r: Ratings, min_shared: int = 20, weights: Literal["linear", "quadratic"] | None = None
) -> list[tuple[int, int, int, float | None]]:
    """Cohen's kappa for every rater pair (a < b) with at least `min_shared` shared units, unweighted or
    with disagreement weights |c - c'| ("linear") or (c - c')^2 ("quadratic") on the codes: as
    `sklearn.metrics.cohen_kappa_score(x, y, labels=range(n_categories), weights=weights)`.

    Returns (a, b, n_shared, kappa) sorted by (a, b); kappa is None where undefined (no expected
    disagreement, e.g. both raters used one and the same category on their shared units).
    """
    first, second = _within_unit_pairs(r)  # rater[first] < rater[second]
    a, b = r.rater[first], r.rater[second]
    va, vb = r.value[first], r.value[second]
    n_raters = max(r.n_raters, 1)
    c = r.n_categories
    if n_raters * n_raters * c * c <= _DENSE_PAIRS:
        keys, pair = np.arange(n_raters * n_raters), a * n_raters + b
    else:  # many raters: number only the pairs that occur
        keys, pair = np.unique(a * n_raters + b, return_inverse=True)
    conf = np.bincount(pair * c * c + va * c + vb, minlength=len(keys) * c * c).reshape(len(keys), c, c)
    n = conf.sum(axis=(1, 2))
    keep = (n >= min_shared) & (n > 0)
    keys, conf, n = keys[keep], conf[keep], n[keep]
    codes = np.arange(c, dtype=np.float64)
    distance = np.abs(codes[:, None] - codes[None, :])
    w = {None: (distance > 0).astype(np.float64), "linear": distance, "quadratic": distance**2}[weights]
    disagree = np.einsum("pij,ij->p", conf, w)
    chance = np.einsum("pi,pj,ij->p", conf.sum(axis=2), conf.sum(axis=1), w)  # n x the expected disagreement
    kappa = 1.0 - _safe_ratio(n * disagree, chance, chance > 0)
    return [
        (a, b, size, k if k == k else None)  # NaN (undefined) to None
        for a, b, size, k in zip(
            (keys // n_raters).tolist(), (keys % n_raters).tolist(), n.tolist(), kappa.tolist(), strict=True
        )
    ]


def _within_unit_pairs(r: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (i, j) of every pair of ratings of the same unit, the rater of i coming first."""
    # Ordered by unit, then rater: rows a gap d apart in one unit pair a lower rater with a higher one.
    order = np.argsort(r.unit * max(r.n_raters, 1) + r.rater, kind="stable")
    units = r.unit[order]
    firsts, seconds = [], []
    for d in range(1, units.size):
        same = np.flatnonzero(units[:-d] == units[d:])
        if same.size == 0:  # sorted: no unit has d + 1 ratings, so no larger gap pairs either
            break
        firsts.append(order[same])
        seconds.append(order[same + d])
    if not firsts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


# --- bootstrap --------------------------------------------------------------------------------------


def weight_chunks(
    n_units: int, n_resamples: int, seed: int, chunk: int | None = None, dtype: type = np.float64
) -> Iterator[np.ndarray]:
    """Resampling weights, `chunk` resamples at a time (by default as many as _CHUNK_BYTES holds): row b
    counts how often each unit was drawn.

    The draws are exactly `np.random.default_rng(seed).integers(0, n_units, size=(n_resamples, n_units))`;
    drawing them chunk by chunk consumes the same stream in the same order.
    """
    per_resample = max(n_units, 1) * (8 + np.dtype(dtype).itemsize)  # int64 draws and their weights
    chunk = chunk or max(1, min(_CHUNK, _CHUNK_BYTES // per_resample))
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        idx = rng.integers(0, n_units, size=(rows, n_units))
        weights = np.empty((rows, n_units), dtype=dtype)
        for b in range(rows):
            weights[b] = np.bincount(idx[b], minlength=n_units)
        yield weights


def bootstrap_weights(n_units: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_units) multinomial weights of the bootstrap resamples (see `weight_chunks`)."""
    if n_units == 0 or n_resamples == 0:
        return np.zeros((n_resamples, n_units))
    return np.vstack(list(weight_chunks(n_units, n_resamples, seed)))


def resampled_stats(stats: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Weighted sums of the per-unit statistics for every resample: (n_resamples, width) float64.

    Where every statistic is a non-negative integer and no sum can reach 2**24 (a resample sums
    n_units rows, so n_units x the largest entry bounds it), the product runs in float32, which is then
    exact and twice as fast; otherwise in float64.
    """
    return resampled_blocks([stats], n_resamples, seed)


def _exact32(stats: np.ndarray) -> bool:
    top = float(stats.max(initial=0.0))
    return bool(
        stats.min(initial=0.0) >= 0
        and stats.shape[0] * top < _F32_LIMIT
        and np.array_equal(stats, np.rint(stats))
    )


def resampled_blocks(blocks: Sequence[np.ndarray], n_resamples: int, seed: int) -> np.ndarray:
    """`resampled_stats` of the blocks' columns side by side (each block (n_units, width_i), the same units),
    without stacking them into one more array: every block is multiplied by each chunk of weights in turn."""
    width = sum(b.shape[1] for b in blocks)
    out = np.zeros((n_resamples, width))
    n_units = blocks[0].shape[0] if blocks else 0
    if n_units == 0 or width == 0:
        return out
    dtype = np.float32 if all(_exact32(b) for b in blocks) else np.float64
    cast = [b.astype(dtype, copy=False) for b in blocks]
    start = 0
    for w in weight_chunks(n_units, n_resamples, seed, dtype=dtype):
        col = 0
        for b in cast:
            out[start : start + len(w), col : col + b.shape[1]] = w @ b
            col += b.shape[1]
        start += len(w)
    return out


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float] | None:
    values = values[np.isfinite(values)]  # undefined resamples are dropped
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(
    r: Ratings, metric: Metric, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile interval of `metric` over bootstrap resamples of the `r.n_units` units.

    Resample b draws `rng.integers(0, n_units, size=(n_resamples, n_units))[b]` with
    `rng = np.random.default_rng(seed)`; resamples where the metric is undefined are dropped;
    the bounds are `np.quantile` (linear) at (1 - level) / 2 and (1 + level) / 2. None when no
    resample is defined.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    layout, stats = _stats_for(r, metric)
    return percentile_interval(
        metric_values(resampled_stats(stats, n_resamples, seed), layout, metric), level
    )


def question_stats(r: Ratings, *, ordinal: bool = False) -> tuple[_Layout, np.ndarray]:
    """Per-unit statistics of every figure of a question: a nominal question's, plus (`ordinal`) those of
    ordinal and interval alpha and of AC2."""
    return unit_stats(r, ordinal=ordinal, interval=ordinal, weighted=ordinal)


def question_figures(
    questions: Mapping[str, Ratings],
    *,
    ordinal: Collection[str] = (),
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Every project-level agreement figure of every question, with bootstrap intervals.

    For each question: "ratings", "pairable_units", "rated_units", every metric of `METRICS` (those of
    `ORDINAL_METRICS` None unless the question is in `ordinal`) and "ci": {metric: (lo, hi) | None}.
    Questions with the same `n_units` share one set of resamples and one matrix product; each interval
    equals `bootstrap_ci` of that question and metric.
    """
    names = list(questions)
    prepared = {name: question_stats(questions[name], ordinal=name in ordinal) for name in names}
    resampled: dict[str, np.ndarray] = {}
    for n_units in sorted({questions[name].n_units for name in names}):
        group = [name for name in names if questions[name].n_units == n_units]
        stacked = np.hstack([prepared[name][1] for name in group])
        sums = resampled_stats(stacked, n_resamples, seed)
        bounds = np.cumsum([0] + [prepared[name][1].shape[1] for name in group])
        for name, lo, hi in zip(group, bounds[:-1], bounds[1:], strict=True):
            resampled[name] = sums[:, lo:hi]
    return {
        name: figures_from_sums(
            rating_counts(questions[name]),
            *prepared[name],
            resampled[name],
            ordinal=name in ordinal,
            level=level,
        )
        for name in names
    }


def rating_counts(r: Ratings) -> dict[str, int]:
    """The counts a question's figures report beside its coefficients."""
    return {
        "ratings": int(r.unit.size),
        "pairable_units": int(np.count_nonzero(r.sizes >= 2)),
        "rated_units": int(np.count_nonzero(r.sizes >= 1)),
    }


def figures_from_sums(
    counts: dict[str, int],
    layout: _Layout,
    stats: np.ndarray,
    resampled: np.ndarray,
    *,
    ordinal: bool,
    level: float = 0.95,
) -> dict[str, Any]:
    """A question's figures from its `rating_counts`, its per-unit statistics `stats` (as `question_stats` gives
    them, or summed per cluster of units: only their total counts) and their resampled sums (n_resamples, width)."""
    metrics = NOMINAL_METRICS + (ORDINAL_METRICS if ordinal else ())
    total = stats.sum(axis=0, keepdims=True)
    figures: dict[str, Any] = dict(counts)
    ci: dict[str, tuple[float, float] | None] = {}
    for metric in METRICS:
        if metric in metrics:
            figures[metric] = _as_float(metric_values(total, layout, metric)[0])
            ci[metric] = percentile_interval(metric_values(resampled, layout, metric), level)
        else:
            figures[metric], ci[metric] = None, None
    figures["ci"] = ci
    return figures


# --- per annotator ----------------------------------------------------------------------------------


def _rater_share(rater: np.ndarray, hit: np.ndarray, n_raters: int) -> tuple[np.ndarray, np.ndarray]:
    n = np.bincount(rater, minlength=n_raters)
    k = np.bincount(rater, weights=hit.astype(np.float64), minlength=n_raters)
    return _safe_ratio(k, n, n > 0), n


def _n_raters(rater: np.ndarray, n_raters: int | None) -> int:
    if n_raters is not None:
        return n_raters
    return int(rater.max()) + 1 if rater.size else 0


def agreement_with_loo_consensus(r: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Per rater: how often their answer equals the leave-one-out consensus of the other raters.

    A rating counts when its unit has >= 2 other ratings and the others have a consensus: one
    category chosen by more than half of them. Every category counts, a tie included. Returns
    (share (n_raters,) with NaN where no rating counted, counted ratings (n_raters,)).
    """
    counted, hit = loo_consensus_hits(r)
    return _rater_share(r.rater[counted], hit[counted], r.n_raters)


def loo_consensus_hits(r: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Per rating (row): whether it counts toward `agreement_with_loo_consensus`, and whether it equals
    the others' consensus there."""
    others = r.counts[r.unit]
    others[np.arange(r.unit.size), r.value] -= 1
    n_others = r.sizes[r.unit] - 1
    top = others.argmax(axis=1) if r.unit.size else np.empty(0, np.int64)
    top_count = others.max(axis=1) if r.unit.size else np.empty(0, np.int64)
    counted = (n_others >= 2) & (2 * top_count > n_others)
    return counted, top == r.value


def gold_accuracy(
    rater: np.ndarray, value: np.ndarray, gold_value: np.ndarray, n_raters: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per rater: share of gold answers equal to the gold value. Inputs are parallel, one row per gold answer.

    Returns (accuracy (n_raters,) with NaN where the rater has no gold answer, gold answers (n_raters,)).
    """
    rater = np.asarray(rater, dtype=np.int64)
    return _rater_share(rater, np.asarray(value) == np.asarray(gold_value), _n_raters(rater, n_raters))


def left_bias(
    rater: np.ndarray, choice: np.ndarray, shown_left: np.ndarray, n_raters: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per rater: share of non-tie choices won by the side shown on the left.

    `choice` uses the choice codes (A=0, TIE=1, B=2); `shown_left` the side shown left as A (0) or
    B (2), anything else meaning unknown (the row is left out). Returns (share (n_raters,) with NaN
    where no row counted, counted rows (n_raters,)).
    """
    rater = np.asarray(rater, dtype=np.int64)
    choice, shown_left = np.asarray(choice), np.asarray(shown_left)
    counted = ((choice == A) | (choice == B)) & ((shown_left == A) | (shown_left == B))
    return _rater_share(rater[counted], (choice == shown_left)[counted], _n_raters(rater, n_raters))


def median_seconds(
    rater: np.ndarray, ms: np.ndarray, n_raters: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per rater: median time per judgment in seconds (rows with a NaN or negative time are left out).

    Returns (median (n_raters,) with NaN where the rater has no timed judgment, timed judgments (n_raters,)).
    """
    rater = np.asarray(rater, dtype=np.int64)
    ms = np.asarray(ms, dtype=np.float64)
    size = _n_raters(rater, n_raters)
    timed = np.isfinite(ms) & (ms >= 0)
    rater, ms = rater[timed], ms[timed]
    order = np.lexsort((ms, rater))
    ms = ms[order]
    n = np.bincount(rater, minlength=size)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    med = np.full(size, np.nan)
    has = n > 0
    lo = start[has] + (n[has] - 1) // 2
    hi = start[has] + n[has] // 2
    med[has] = (ms[lo] + ms[hi]) / 2.0 / 1000.0
    return med, n


def flag_annotators(
    median_s: np.ndarray,
    n_timed: np.ndarray,
    gold_acc: np.ndarray,
    n_gold: np.ndarray,
    *,
    project_median_s: float | None,
    speed_ratio: float = 1 / 3,
    min_timed: int = 10,
    min_gold_accuracy: float = 0.7,
    min_gold: int = 10,
) -> dict[str, np.ndarray]:
    """Flags per rater from the per-rater figures above.

    "too_fast": at least `min_timed` timed judgments and a median below `speed_ratio` x the project
    median; "low_gold_accuracy": at least `min_gold` gold answers and accuracy below
    `min_gold_accuracy`; "flagged": either. Each a (n_raters,) bool array.
    """
    median_s, gold_acc = np.asarray(median_s, dtype=np.float64), np.asarray(gold_acc, dtype=np.float64)
    too_fast = np.zeros(median_s.shape, dtype=bool)
    if project_median_s is not None and np.isfinite(project_median_s):
        too_fast = (np.asarray(n_timed) >= min_timed) & (median_s < speed_ratio * project_median_s)
    low_gold = (np.asarray(n_gold) >= min_gold) & (gold_acc < min_gold_accuracy)
    return {"too_fast": too_fast, "low_gold_accuracy": low_gold, "flagged": too_fast | low_gold}


# --- preference structure ---------------------------------------------------------------------------


def _check_choice(r: Ratings) -> None:
    if r.n_categories != 3:
        raise ValueError("choice ratings have three categories: A=0, TIE=1, B=2")


def consensus(r_choice: Ratings, override: np.ndarray | None = None) -> np.ndarray:
    """Per unit the side chosen by a strict majority of the non-tie choices: A (0), B (2) or NO_CONSENSUS (-1).

    `override` (optional, (n_units,)) holds gold or adjudicated sides (0 or 2) that replace the vote;
    -1 where there is none.
    """
    _check_choice(r_choice)
    votes_a, votes_b = r_choice.counts[:, A], r_choice.counts[:, B]
    side = np.full(r_choice.n_units, NO_CONSENSUS, dtype=np.int8)
    side[votes_a > votes_b] = A
    side[votes_b > votes_a] = B
    if override is not None:
        override = np.asarray(override)
        given = (override == A) | (override == B)
        side[given] = override[given]
    return side


def consensus_share(r_choice: Ratings, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: share of the non-tie votes that chose the consensus side, and the number of non-tie votes.

    The share is NaN where there is no consensus or no non-tie vote.
    """
    _check_choice(r_choice)
    votes_a, votes_b = r_choice.counts[:, A], r_choice.counts[:, B]
    n = votes_a + votes_b
    side = np.asarray(side)
    agree = np.where(side == A, votes_a, votes_b)
    return _safe_ratio(agree, n, (n > 0) & ((side == A) | (side == B))), n


def human_margin(r_pref: Ratings, side: np.ndarray) -> np.ndarray:
    """Per unit: mean strength |preference| of the votes for the consensus side, divided by 3 (0..1).

    `r_pref` holds the 7-point preference coded 0..6 for -3..+3 (negative = A better). NaN where
    there is no consensus or no vote for its side carries a preference.
    """
    if r_pref.n_categories != 7:
        raise ValueError("preference ratings have seven categories, coded 0..6 for -3..+3")
    counts = r_pref.counts
    strength = np.abs(np.arange(7) - 3)
    for_a, for_b = counts[:, :3], counts[:, 4:]
    side = np.asarray(side)
    votes = np.where(side == A, for_a.sum(axis=1), for_b.sum(axis=1))
    total = np.where(side == A, for_a @ strength[:3], for_b @ strength[4:])
    return _safe_ratio(total, 3.0 * votes, (votes > 0) & ((side == A) | (side == B)))


# --- model margins ----------------------------------------------------------------------------------


def model_margin(reward_a: np.ndarray, reward_b: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Per unit: r(consensus side) - r(other side); NaN where there is no consensus.

    For a cost model pass costs negated, so that the margin is c(unsafer) - c(safer).
    """
    reward_a, reward_b, side = np.asarray(reward_a, float), np.asarray(reward_b, float), np.asarray(side)
    out = np.full(side.shape, np.nan)
    out[side == A] = (reward_a - reward_b)[side == A]
    out[side == B] = (reward_b - reward_a)[side == B]
    return out


def strength_bucket(margin: np.ndarray) -> np.ndarray:
    """Human margin (0..1) to its strength bucket round(3 x margin) in 0..3; -1 where the margin is NaN."""
    margin = np.asarray(margin, dtype=np.float64)
    out = np.full(margin.shape, -1, dtype=np.int64)
    known = np.isfinite(margin)
    out[known] = np.rint(3.0 * margin[known]).astype(np.int64)
    return out


def accuracy_by_strength(correct: np.ndarray, bucket: np.ndarray) -> list[dict[str, Any]]:
    """Model accuracy per human-strength bucket: [{"bucket", "n", "accuracy"}] for each bucket present.

    `correct` is the model's margin > 0 per unit (NaN rows are left out), `bucket` an int per unit
    (negative = unknown, left out).
    """
    correct = np.asarray(correct, dtype=np.float64)
    bucket = np.asarray(bucket, dtype=np.int64)
    keep = np.isfinite(correct) & (bucket >= 0)
    correct, bucket = correct[keep], bucket[keep]
    if bucket.size == 0:
        return []
    n = np.bincount(bucket)
    hits = np.bincount(bucket, weights=correct)
    return [{"bucket": int(b), "n": int(n[b]), "accuracy": float(hits[b] / n[b])} for b in np.flatnonzero(n)]


def margin_histogram(margins: np.ndarray, bins: int | Sequence[float] = 20) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the finite margins: (counts, edges) as from `np.histogram`."""
    margins = np.asarray(margins, dtype=np.float64)
    return np.histogram(margins[np.isfinite(margins)], bins=bins)


def calibration(model_margin: np.ndarray, agree_share: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability of sigma(model margin) against the observed share of non-tie votes for the consensus side.

    Predictions fall in `n_bins` equal bins of [0, 1] (the last one closed). Returns {"n", "ece",
    "bins": [{"lo", "hi", "n", "mean_predicted", "mean_observed"}]} with the means None in empty
    bins; ece = sum over bins of n_bin / n x |mean_predicted - mean_observed|, None when n = 0.
    Units where either input is NaN are left out.
    """
    m = np.asarray(model_margin, dtype=np.float64)
    obs = np.asarray(agree_share, dtype=np.float64)
    keep = np.isfinite(m) & np.isfinite(obs)
    pred, obs = expit(m[keep]), obs[keep]
    idx = np.minimum((pred * n_bins).astype(np.int64), n_bins - 1)
    n = np.bincount(idx, minlength=n_bins)
    sum_pred = np.bincount(idx, weights=pred, minlength=n_bins)
    sum_obs = np.bincount(idx, weights=obs, minlength=n_bins)
    bins = []
    for b in range(n_bins):
        filled = n[b] > 0
        bins.append(
            {
                "lo": b / n_bins,
                "hi": (b + 1) / n_bins,
                "n": int(n[b]),
                "mean_predicted": float(sum_pred[b] / n[b]) if filled else None,
                "mean_observed": float(sum_obs[b] / n[b]) if filled else None,
            }
        )
    total = int(n.sum())
    ece = float(np.abs(sum_pred - sum_obs).sum() / total) if total else None
    return {"n": total, "ece": ece, "bins": bins}


def triage_rank(
    votes_a: np.ndarray,
    votes_b: np.ndarray,
    model_pref: np.ndarray | None = None,
    *,
    min_votes: int = 2,
    limit: int | None = None,
) -> list[tuple[int, float, str]]:
    """Comparisons most worth a second look, best first: [(unit, score, reason)].

    Over units with at least `min_votes` non-tie votes, with s = the majority's share of them:
    - "model_vs_humans": sigma(|model_pref|) x s when the humans have a majority side and the model
      (model_pref = r(B) - r(A), same sign as the preference) prefers the other side;
    - "humans_split": 1 - |votes_a - votes_b| / (votes_a + votes_b), 1 for an even split.
    The score is the larger of the two (reason of the larger; model_vs_humans on a tie); units scoring
    0 are left out. Ties in score go to more votes, then the lower unit index.
    """
    votes_a = np.asarray(votes_a, dtype=np.float64)
    votes_b = np.asarray(votes_b, dtype=np.float64)
    n = votes_a + votes_b
    counted = n >= max(min_votes, 1)
    n_ok = np.where(counted, n, 1.0)
    split = np.where(counted, 1.0 - np.abs(votes_a - votes_b) / n_ok, 0.0)
    model = np.zeros(n.shape)
    if model_pref is not None:
        pref = np.asarray(model_pref, dtype=np.float64)
        human_side = np.sign(votes_b - votes_a)
        against = counted & np.isfinite(pref) & (human_side != 0) & (np.sign(pref) == -human_side)
        share = np.maximum(votes_a, votes_b) / n_ok
        model[against] = expit(np.abs(pref[against])) * share[against]
    score = np.maximum(model, split)
    units = np.flatnonzero(score > 0)
    order = units[np.lexsort((units, -n[units], -score[units]))]
    if limit is not None:
        order = order[:limit]
    return [
        (int(u), float(score[u]), "model_vs_humans" if model[u] >= split[u] else "humans_split")
        for u in order
    ]
