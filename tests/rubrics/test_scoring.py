"""Scores against hand-computed examples (rubrics/scoring.md)."""

from __future__ import annotations

import pytest

from rubrics.scoring import ScoringCriterion as C
from rubrics.scoring import weighted_score

RUBRIC = [C("e", "essential", 5), C("i", "important", 3), C("o", "optional", 1), C("p", "pitfall", -2)]


def test_all_positive_met_and_no_pitfall_scores_one():
    assert weighted_score(RUBRIC, {"e": "yes", "i": "yes", "o": "yes", "p": "no"}) == 1.0


def test_met_pitfall_subtracts_its_weight_from_the_positive_share():
    # (5 + 1 - 2) / (5 + 3 + 1) = 4/9
    answers = {"e": "yes", "i": "no", "o": "yes", "p": "yes"}
    assert weighted_score(RUBRIC, answers) == pytest.approx(4 / 9)


def test_absolute_variant_divides_by_every_counted_weight():
    # (5 + 1 - 2) / (5 + 3 + 1 + 2) = 4/11
    answers = {"e": "yes", "i": "no", "o": "yes", "p": "yes"}
    assert weighted_score(RUBRIC, answers, normalise="absolute") == pytest.approx(4 / 11)


def test_failed_essential_caps_the_score_at_the_project_cap():
    answers = {"e": "no", "i": "yes", "o": "yes", "p": "no"}  # 4/9 uncapped: below the 0.5 cap
    assert weighted_score(RUBRIC, answers) == pytest.approx(4 / 9)
    rubric = [C("e", "essential", 1), C("i", "important", 3), C("o", "optional", 1)]
    answers = {"e": "no", "i": "yes", "o": "yes"}  # 4/5 = 0.8 → capped
    assert weighted_score(rubric, answers) == 0.5
    assert weighted_score(rubric, answers, essential_cap=0.3) == 0.3
    assert weighted_score(rubric, answers, essential_cap=None) == pytest.approx(0.8)


def test_not_applicable_leaves_the_criterion_out_of_numerator_and_denominator():
    # i is na: (5 + 1) / (5 + 1) = 1; absolute: 6 / (5 + 1 + 2) = 0.75
    answers = {"e": "yes", "i": "na", "o": "yes", "p": "no"}
    assert weighted_score(RUBRIC, answers) == 1.0
    assert weighted_score(RUBRIC, answers, normalise="absolute") == pytest.approx(0.75)


def test_unanswered_counts_like_not_applicable():
    assert weighted_score(RUBRIC, {"e": "yes", "p": "no"}) == 1.0


def test_score_is_clipped_at_zero_when_pitfalls_outweigh():
    rubric = [C("o", "optional", 1), C("p", "pitfall", -4)]
    assert weighted_score(rubric, {"o": "yes", "p": "yes"}) == 0.0


def test_no_counted_criterion_gives_no_score():
    assert weighted_score(RUBRIC, {"i": "na"}) is None
    assert weighted_score([C("p", "pitfall", -2)], {"p": "yes"}) is None
    assert weighted_score([C("p", "pitfall", -2)], {"p": "no"}, normalise="absolute") == 0.0


def test_unknown_normalisation_is_an_error():
    with pytest.raises(ValueError, match="normalise"):
        weighted_score(RUBRIC, {}, normalise="sum")
