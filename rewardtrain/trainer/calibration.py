"""Expected calibration error of a reward model's pair probabilities: plain Python, no torch, no Django.

A model's probability that the chosen (consensus) response of a pair is preferred is σ(r(chosen) − r(rejected))
(Bradley–Terry). Two ECEs are read from it (DESIGN.md "Margins"):

- against correctness: confidence max(p, 1 − p) against whether the model's side is the consensus side;
- against the vote share: p against the share of non-tie votes for the chosen side.

Both bin the predictions in `n_bins` equal bins of [0, 1] (the last closed) and sum n_bin / n × |mean
prediction − mean outcome|, the same rule as `insights.metrics.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

N_BINS = 10
# Written by the trainer into a run's folder: per held-out pair {item_key, chosen, rejected, margin}, in the order
# of the held-out pairs (the input order); the registry reads it to compute the run's ECEs.
HELD_OUT_SCORES = "held_out_scores.json"


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def ece(predicted: Sequence[float], observed: Sequence[float], n_bins: int = N_BINS) -> float | None:
    """Expected calibration error of `predicted` probabilities against `observed` outcomes (0/1 or shares).

    Pairs where either is NaN are left out; None when nothing is left."""
    if len(predicted) != len(observed):
        raise ValueError(f"{len(predicted)} predictions against {len(observed)} outcomes")
    if n_bins < 1:
        raise ValueError(f"n_bins must be 1 or more, not {n_bins}")
    count = [0] * n_bins
    gap = [0.0] * n_bins
    for p, o in zip(predicted, observed, strict=True):
        if math.isnan(p) or math.isnan(o):
            continue
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"a probability must be in [0, 1], not {p}")
        b = min(int(p * n_bins), n_bins - 1)
        count[b] += 1
        gap[b] += p - o
    total = sum(count)
    return sum(abs(g) for g in gap) / total if total else None


def pair_calibration(margins: Sequence[float], shares: Sequence[float] | None = None) -> dict:
    """ECE against correctness (and against the vote share, given `shares`) of pairs whose model margin is
    r(chosen) − r(rejected) for the consensus side chosen; the keys a run's metrics store."""
    p = [sigmoid(m) for m in margins]
    out = {
        "ece_correctness": ece([max(q, 1.0 - q) for q in p], [1.0 if m > 0 else 0.0 for m in margins]),
        "calibration_pairs": len(p),
    }
    if shares is not None:
        out["ece_vote_share"] = ece(p, shares)
    return out
