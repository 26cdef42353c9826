"""The pure ECE function against a hand computation and against insights.metrics.calibration's rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from insights import metrics as M
from rewardtrain.trainer.calibration import ece, pair_calibration, sigmoid


def test_ece_by_hand():
    # Bins of width 0.1: 0.05 and 0.15 apart; 0.95 and 1.0 in the last (closed) bin.
    predicted = [0.05, 0.15, 0.95, 1.0]
    observed = [0.0, 1.0, 1.0, 1.0]
    expected = (abs(0.05 - 0) + abs(0.15 - 1) + abs(0.95 + 1.0 - 2.0)) / 4
    assert ece(predicted, observed) == pytest.approx(expected, abs=1e-15)
    assert ece([0.7, math.nan], [1.0, 0.0]) == pytest.approx(0.3)
    assert ece([], []) is None


def test_ece_against_the_vote_share_is_the_margin_pages_rule():
    rng = np.random.default_rng(5)
    margins = rng.normal(0, 2, 500)
    shares = rng.uniform(0, 1, 500)
    got = pair_calibration(margins.tolist(), shares.tolist())
    assert got["ece_vote_share"] == pytest.approx(M.calibration(margins, shares)["ece"], abs=1e-12)
    assert got["calibration_pairs"] == 500


def test_ece_against_correctness_uses_the_confidence_of_the_models_side():
    margins = [2.0, -1.0, 0.5]
    conf = [sigmoid(2.0), 1 - sigmoid(-1.0), sigmoid(0.5)]
    correct = [1.0, 0.0, 1.0]
    by_bin: dict[int, list[float]] = {}
    for p, o in zip(conf, correct, strict=True):
        by_bin.setdefault(min(int(p * 10), 9), []).append(p - o)
    expected = sum(abs(sum(v)) for v in by_bin.values()) / 3
    assert pair_calibration(margins)["ece_correctness"] == pytest.approx(expected, abs=1e-15)
    assert "ece_vote_share" not in pair_calibration(margins)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 predictions against 1 outcomes"):
        ece([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="must be in"):
        ece([1.5], [1.0])
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0
