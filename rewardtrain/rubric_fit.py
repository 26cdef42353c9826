"""Fitting a rubric reward: weights w_i for the criteria (and w_0 for a reward model's score) so that
σ(Σ w_i·(v_i(A) − v_i(B)) + w_0·(r(A) − r(B))) is the probability that the humans chose A, as Rule-Based
Rewards fit theirs. Plain arrays in, plain figures out: no Django here (rubric_reward.py reads the database).

v_i(response) is the share of the response's annotators who answered criterion i "yes" (of those answering
yes / no); where nobody did (all "na", or unanswered) it is the criterion's fill value, the mean of v_i over
the responses that have one. The fit is an L2-regularised logistic regression without intercept (the
canonical order of a pair means nothing, so swapping A and B must only flip the sign), cross-validated with
folds that never split an item: every comparison of one prompt is in the same fold. Definitions and why:
DESIGN.md "Rubric rewards".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from insights.metrics import bootstrap_weights, percentile_interval

DEFAULT_C = 1.0
DEFAULT_FOLDS = 5
N_RESAMPLES = 1000
N_WEIGHT_RESAMPLES = 200
SEED = 0
LEVEL = 0.95
METHODS = ("hand_set", "fitted", "model", "combined")
DIFFERENCES = ("fitted-hand_set", "combined-model", "combined-fitted")
METHOD_NAMES = {
    "hand_set": "Hand-set weights (rubric score)",
    "fitted": "Fitted criterion weights",
    "model": "Reward model alone",
    "combined": "Fitted criteria + reward model",
}


class FitError(ValueError):
    """The data cannot be fitted (too few pairs or items); the message says what is missing."""


@dataclass
class FitData:
    """n pairs (one per snapshot comparison), k criteria, in canonical order A / B.

    xa, xb: (n, k) v_i of each side, NaN where unknown; ra, rb: (n,) model scores, or None without a model;
    hand_a, hand_b: (n,) the rubric's own score of each side with its hand-set weights (NaN undefined);
    y: (n,) 1 when the humans chose A, 0 for B; groups: (n,) the item of each pair (folds never split one).
    """

    keys: list[str]
    xa: np.ndarray
    xb: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    hand_a: np.ndarray
    hand_b: np.ndarray
    ra: np.ndarray | None = None
    rb: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.y.size)


def fill_values(xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Per criterion: the mean of the known v_i over both sides (0.5 when none is known)."""
    both = np.vstack([xa, xb])
    known = np.isfinite(both)
    sums = np.where(known, both, 0.0).sum(axis=0)
    counts = known.sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.5)


def filled(x: np.ndarray, fill: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, fill)


def features(data: FitData, fill: np.ndarray, *, with_model: bool) -> np.ndarray:
    """(n, k [+ 1]): v(A) − v(B) per criterion [, r(A) − r(B)]."""
    x = filled(data.xa, fill) - filled(data.xb, fill)
    if with_model:
        x = np.column_stack([x, data.ra - data.rb])
    return x


def fit_weights(
    x: np.ndarray, y: np.ndarray, *, c: float = DEFAULT_C, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """Weights of the logistic regression P(A) = σ(x·w), L2 penalty ½‖w‖² + c·Σ log-loss, no intercept.

    Each pair is entered twice, as (x, y) and (−x, 1 − y), with half the weight: without an intercept the
    loss is the same, and both classes are present even when every human chose the canonical A."""
    if x.shape[0] == 0:
        raise FitError("no pairs to fit")
    from sklearn.linear_model import LogisticRegression  # here: the web process imports this module

    sw = np.ones(x.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    model = LogisticRegression(C=c, fit_intercept=False, max_iter=1000)
    model.fit(np.vstack([x, -x]), np.concatenate([y, 1 - y]), sample_weight=np.concatenate([sw, sw]) / 2)
    return model.coef_[0].copy()


def group_folds(groups: np.ndarray, n_splits: int = DEFAULT_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold over items: (train rows, test rows) per fold; no item is on both sides of any fold."""
    from sklearn.model_selection import GroupKFold

    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise FitError(f"cross-validation needs pairs from at least 2 items, not {n_groups}")
    splitter = GroupKFold(n_splits=min(n_splits, n_groups))
    folds = []
    for train, test in splitter.split(np.zeros(groups.size), groups=groups):
        if np.intersect1d(groups[train], groups[test]).size:  # GroupKFold's promise, held here too
            raise FitError("a fold mixed items between training and test")
        folds.append((train, test))
    return folds


def correct(diff: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where the sign of the predicted A − B difference matches the choice, 0 where it does not, ½ where
    the prediction is a tie or undefined (as good as a coin)."""
    out = np.full(y.size, 0.5)
    decided = np.isfinite(diff) & (diff != 0)
    out[decided] = ((diff[decided] > 0) == (y[decided] == 1)).astype(float)
    return out


def _interval(values: np.ndarray) -> list[float] | None:
    bounds = percentile_interval(values, LEVEL)
    return list(bounds) if bounds else None


def evaluate(
    data: FitData,
    *,
    c: float = DEFAULT_C,
    n_splits: int = DEFAULT_FOLDS,
    n_resamples: int = N_RESAMPLES,
    n_weight_resamples: int = N_WEIGHT_RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """The fit on all pairs, and the out-of-fold accuracy of every method with item-bootstrap intervals.

    Hand-set weights and the reward model alone have nothing to fit: their predictions are the sign of the
    difference of their scores on every pair. The fitted methods predict each fold's pairs with weights fitted
    on the other folds. Intervals resample items (with all their pairs) `n_resamples` times, the same
    resamples for every method, so the differences between methods get intervals too.
    """
    if data.n < 2:
        raise FitError(f"a fit needs at least 2 pairs with rubric answers on both sides, not {data.n}")
    with_model = data.ra is not None
    fill = fill_values(data.xa, data.xb)
    x_rubric = features(data, fill, with_model=False)
    x_combined = features(data, fill, with_model=True) if with_model else None
    folds = group_folds(data.groups, n_splits)
    predicted = {"fitted": np.full(data.n, np.nan)}
    if with_model:
        predicted["combined"] = np.full(data.n, np.nan)
    for train, test in folds:
        w = fit_weights(x_rubric[train], data.y[train], c=c)
        predicted["fitted"][test] = x_rubric[test] @ w
        if with_model:
            w = fit_weights(x_combined[train], data.y[train], c=c)
            predicted["combined"][test] = x_combined[test] @ w
    predicted["hand_set"] = data.hand_a - data.hand_b
    if with_model:
        predicted["model"] = data.ra - data.rb
    hits = {m: correct(predicted[m], data.y) for m in METHODS if m in predicted}

    _, group_index = np.unique(data.groups, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    per_group_n = np.bincount(group_index, minlength=n_groups).astype(float)
    resample_w = bootstrap_weights(n_groups, n_resamples, seed)
    pairs_drawn = resample_w @ per_group_n
    resampled = {
        m: (resample_w @ np.bincount(group_index, weights=h, minlength=n_groups)) / pairs_drawn
        for m, h in hits.items()
    }
    accuracy = {
        m: {
            "name": METHOD_NAMES[m],
            "accuracy": float(h.mean()),
            "ci": _interval(resampled[m]),
            "ties": int((h == 0.5).sum()),
        }
        for m, h in hits.items()
    }
    differences = {}
    for name in DIFFERENCES:
        a, b = name.split("-")
        if a in hits and b in hits:
            differences[name] = {
                "difference": float(hits[a].mean() - hits[b].mean()),
                "ci": _interval(resampled[a] - resampled[b]),
            }

    weights = fit_weights(x_rubric, data.y, c=c)
    combined = fit_weights(x_combined, data.y, c=c) if with_model else None
    weight_draws = {"fitted": [], "combined": []}
    row_group = group_index
    for b in range(min(n_weight_resamples, n_resamples)):
        sample_weight = resample_w[b][row_group]
        if not sample_weight.any():
            continue
        weight_draws["fitted"].append(fit_weights(x_rubric, data.y, c=c, sample_weight=sample_weight))
        if with_model:
            weight_draws["combined"].append(fit_weights(x_combined, data.y, c=c, sample_weight=sample_weight))

    def weight_rows(w: np.ndarray, draws: list[np.ndarray], names: list[str]) -> list[dict[str, Any]]:
        stacked = np.array(draws) if draws else np.zeros((0, len(names)))
        return [
            {"key": name, "weight": float(w[i]), "ci": _interval(stacked[:, i]) if len(draws) else None}
            for i, name in enumerate(names)
        ]

    return {
        "pairs": data.n,
        "items": n_groups,
        "chose_a": int(data.y.sum()),
        "fill": {k: float(f) for k, f in zip(data.keys, fill, strict=True)},
        "weights": weight_rows(weights, weight_draws["fitted"], data.keys),
        "combined_weights": weight_rows(combined, weight_draws["combined"], [*data.keys, "model"])
        if with_model
        else None,
        "accuracy": accuracy,
        "differences": differences,
        "folds": [
            {
                "train_pairs": int(train.size),
                "test_pairs": int(test.size),
                "train_items": int(np.unique(data.groups[train]).size),
                "test_items": int(np.unique(data.groups[test]).size),
                "shared_items": int(np.intersect1d(data.groups[train], data.groups[test]).size),
            }
            for train, test in folds
        ],
        "options": {
            "c": c,
            "n_splits": len(folds),
            "n_resamples": n_resamples,
            "n_weight_resamples": min(n_weight_resamples, n_resamples),
            "seed": seed,
            "level": LEVEL,
        },
    }
