"""Per-criterion figures of a rubric version: agreement equals the `krippendorff` and `irrCAC` references,
discrimination and prediction counts, flags, and the criteria that explain contested comparisons."""

from __future__ import annotations

import random

import krippendorff
import numpy as np
import pandas as pd
import pytest
from irrCAC.raw import CAC

from insights import metrics as M
from insights.rubric_criteria import (
    ANSWERS,
    AnswerRow,
    criterion_figures,
    criterion_ratings,
    disagreement_figures,
    gwet_ac1,
    wilson,
)
from rubrics.scoring import ScoringCriterion as C


def references(rows: list[AnswerRow], key: str) -> tuple[float, float]:
    """(alpha, AC1) of one criterion from the reference packages, on a units × raters table."""
    units = sorted({(r.comparison_id, r.side) for r in rows if r.key == key})
    raters = sorted({r.annotator_id for r in rows if r.key == key})
    table = np.full((len(units), len(raters)), np.nan)
    for r in rows:
        if r.key == key:
            table[units.index((r.comparison_id, r.side)), raters.index(r.annotator_id)] = ANSWERS.index(
                r.answer
            )
    alpha = krippendorff.alpha(
        reliability_data=table.T, level_of_measurement="nominal", value_domain=[0, 1, 2]
    )
    # Categories given explicitly: irrCAC otherwise lists NaN among them under pandas 3.
    ac1 = CAC(pd.DataFrame(table), categories=[0.0, 1.0, 2.0], digits=12).gwet()["est"]["coefficient_value"]
    return float(alpha), float(ac1)


def simulated_rows(seed: int, n_comparisons: int = 80, n_raters: int = 6) -> list[AnswerRow]:
    """Three criteria answered by 2–4 raters per comparison: a reliable one, a noisy one, a constant one."""
    rng = random.Random(seed)
    rows = []
    for cid in range(n_comparisons):
        truth = {side: {"good": rng.random() < 0.5, "noisy": rng.random() < 0.5} for side in "ab"}
        for annotator in rng.sample(range(n_raters), rng.randint(2, 4)):
            choice = rng.choice(["a", "b", "tie"])
            for side in "ab":
                good = truth[side]["good"] if rng.random() > 0.05 else not truth[side]["good"]
                noisy = truth[side]["noisy"] if rng.random() > 0.45 else rng.random() < 0.5
                answers = {
                    "good": "yes" if good else "no",
                    "noisy": "na" if rng.random() < 0.2 else ("yes" if noisy else "no"),
                    "same": "yes",
                }
                for key, answer in answers.items():
                    if rng.random() < 0.05:
                        continue  # a missing answer
                    rows.append(AnswerRow(cid, annotator, choice, side, key, answer))
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alpha_and_ac1_equal_the_references(seed):
    rows = simulated_rows(seed)
    criteria = [C("good", "important", 3), C("noisy", "important", 3), C("same", "optional", 1)]
    figures = {f["key"]: f for f in criterion_figures(rows, criteria, n_resamples=50)}
    for key in ("good", "noisy"):
        alpha, ac1 = references(rows, key)
        assert figures[key]["alpha"] == pytest.approx(alpha, abs=1e-9)
        assert figures[key]["ac1"] == pytest.approx(ac1, abs=1e-9)
    # Every answer "yes": alpha is undefined (no expected disagreement); AC1 is 1 (irrCAC agrees).
    assert figures["same"]["alpha"] is None
    assert (
        figures["same"]["ac1"] == pytest.approx(references(rows, "same")[1], abs=1e-9) == pytest.approx(1.0)
    )


def test_ac1_on_a_small_table_by_hand():
    # 3 units × 3 raters, categories yes/no/na; unit 3 has one rating (counts in π, not in pa).
    rows = [
        ("u1", "r1", "yes"),
        ("u1", "r2", "yes"),
        ("u1", "r3", "no"),
        ("u2", "r1", "no"),
        ("u2", "r2", "no"),
    ]
    rows += [("u3", "r1", "na")]
    r, _, _ = M.Ratings.from_rows(rows, ANSWERS)
    pa = (2 / 6 + 1) / 2
    pi = np.array([(2 / 3 + 0 + 0) / 3, (1 / 3 + 1 + 0) / 3, (0 + 0 + 1) / 3])
    pe = (pi * (1 - pi)).sum() / 2
    assert gwet_ac1(r) == pytest.approx((pa - pe) / (1 - pe))
    single, _, _ = M.Ratings.from_rows([("u1", "r1", "yes")], ANSWERS)
    assert gwet_ac1(single) is None  # no unit with two ratings


def test_discrimination_prediction_and_flags():
    # "splits" separates every judgment and sides with the choice; "against" sides with the rejected side;
    # "flat" never separates; "coin" is answered at random by raters who never agree.
    rows = []
    rng = random.Random(3)
    for cid in range(40):
        for annotator in (1, 2, 3):
            choice = "a" if cid % 2 else "b"
            other = "b" if choice == "a" else "a"
            for side in "ab":
                rows.append(
                    AnswerRow(cid, annotator, choice, side, "splits", "yes" if side == choice else "no")
                )
                rows.append(
                    AnswerRow(cid, annotator, choice, side, "against", "yes" if side == other else "no")
                )
                rows.append(AnswerRow(cid, annotator, choice, side, "flat", "yes"))
                rows.append(AnswerRow(cid, annotator, choice, side, "coin", rng.choice(["yes", "no"])))
    criteria = [C(k, "important", 3) for k in ("splits", "against", "flat", "coin")]
    figures = {f["key"]: f for f in criterion_figures(rows, criteria, n_resamples=50)}
    splits = figures["splits"]
    assert (splits["answered"], splits["discriminating"], splits["with_preference"]) == (120, 120, 120)
    assert splits["predicts"] == 1.0 and splits["flags"] == []
    assert splits["predicts_ci"] == pytest.approx(wilson(120, 120))
    assert (
        figures["against"]["predicts"] == 0.0 and "contradicts the preference" in figures["against"]["flags"]
    )
    assert figures["flat"]["rate"] == 0.0 and "never discriminates" in figures["flat"]["flags"]
    assert figures["coin"]["alpha"] < 0.2 and "annotators disagree" in figures["coin"]["flags"]


def test_wilson_interval():
    assert wilson(0, 0) is None
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4901624, abs=1e-6) and hi == pytest.approx(0.9433178, abs=1e-6)


def test_criteria_that_explain_disagreement():
    # Comparison 1: raters 1 and 2 chose A and answered "clear" yes on A, no on B; rater 3 chose B and saw the
    # reverse. "fluff" is answered alike by all. Comparison 2 is unanimous, not contested.
    rows = []
    for annotator, choice in ((1, "a"), (2, "a"), (3, "b")):
        rows += [
            AnswerRow(1, annotator, choice, "a", "clear", "yes" if choice == "a" else "no"),
            AnswerRow(1, annotator, choice, "b", "clear", "no" if choice == "a" else "yes"),
            AnswerRow(1, annotator, choice, "a", "fluff", "yes"),
            AnswerRow(1, annotator, choice, "b", "fluff", "no"),
            AnswerRow(1, annotator, choice, "a", "rude", "no" if choice == "a" else "yes"),  # a pitfall
            AnswerRow(1, annotator, choice, "b", "rude", "no"),
        ]
        rows += [AnswerRow(2, annotator, "a", side, "clear", "yes") for side in "ab"]
    criteria = [C("clear", "important", 3), C("fluff", "optional", 1), C("rude", "pitfall", -2)]
    out = disagreement_figures(rows, criteria)
    assert out["contested"] == 1
    by_key = {f["key"]: f for f in out["criteria"]}
    # clear: A camp favour +1, B camp −1 → gap 2, consistent. rude (pitfall met on A by the B camp): A camp 0,
    # B camp −1 → gap 1. fluff: both camps +1 → gap 0.
    assert (by_key["clear"]["consistent"], by_key["clear"]["mean_gap"]) == (1, 2.0)
    assert (by_key["rude"]["consistent"], by_key["rude"]["mean_gap"]) == (1, 1.0)
    assert (by_key["fluff"]["differs"], by_key["fluff"]["mean_gap"]) == (0, 0.0)
    assert out["comparisons"] == [
        {"comparison_id": 1, "votes_a": 2, "votes_b": 1, "votes_tie": 0, "criteria": ["clear", "rude"]}
    ]


def test_ratings_use_one_unit_per_response_of_a_comparison():
    rows = [
        AnswerRow(1, 7, "a", "a", "k", "yes"),
        AnswerRow(1, 7, "a", "b", "k", "no"),
        AnswerRow(1, 8, "a", "a", "k", "yes"),
    ]
    r = criterion_ratings(rows, "k")
    assert (r.n_units, r.n_raters, sorted(r.sizes.tolist())) == (2, 2, [1, 2])
