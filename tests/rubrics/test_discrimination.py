"""Rubric vs preference and per-criterion discrimination on a small hand-made fixture."""

from __future__ import annotations

import pytest

from rubrics.scoring import JudgedPair, rubric_vs_preference
from rubrics.scoring import ScoringCriterion as C

RUBRIC = [C("e", "essential", 5), C("i", "important", 3), C("o", "optional", 1), C("p", "pitfall", -2)]

PAIRS = [
    # A meets everything, B fails i and has the pitfall; human prefers A → rubric agrees.
    JudgedPair(
        "a", {"e": "yes", "i": "yes", "o": "yes", "p": "no"}, {"e": "yes", "i": "no", "o": "yes", "p": "yes"}
    ),
    # B better on i; human prefers A → rubric disagrees.
    JudgedPair(
        "a", {"e": "yes", "i": "no", "o": "yes", "p": "no"}, {"e": "yes", "i": "yes", "o": "yes", "p": "no"}
    ),
    # Identical answers; human prefers B → rubric tie.
    JudgedPair(
        "b", {"e": "yes", "i": "na", "o": "yes", "p": "no"}, {"e": "yes", "i": "na", "o": "yes", "p": "no"}
    ),
    # Human tie: counts for discrimination only. p differs (met on A).
    JudgedPair(
        "tie",
        {"e": "yes", "i": "yes", "o": "yes", "p": "yes"},
        {"e": "yes", "i": "yes", "o": "yes", "p": "no"},
    ),
]


def test_agreement_share_counts_decisive_judgments_only():
    result = rubric_vs_preference(RUBRIC, PAIRS)
    assert (result.judgments, result.decisive) == (4, 3)
    assert (result.agree, result.disagree, result.rubric_tie) == (1, 1, 1)
    assert result.agreement == pytest.approx(1 / 3)


def test_per_criterion_discrimination_figures():
    figures = {f.key: f for f in rubric_vs_preference(RUBRIC, PAIRS).criteria}
    # e: answered on all 4, never differs → flagged "never".
    assert (figures["e"].answered, figures["e"].discriminating, figures["e"].flag) == (4, 0, "never")
    # o: same.
    assert figures["o"].flag == "never"
    # i: na in pair 3 → answered 3; differs in pairs 1 and 2 → 2/3; sides with preference once, against once.
    i = figures["i"]
    assert (i.answered, i.discriminating) == (3, 2)
    assert i.rate == pytest.approx(2 / 3)
    assert (i.with_preference, i.against_preference, i.flag) == (1, 1, None)
    # p: differs in pairs 1 and 4 → 2/4; pair 1 favours A (pitfall on B), human chose A; pair 4 is a human tie.
    p = figures["p"]
    assert (p.answered, p.discriminating, p.with_preference, p.against_preference) == (4, 2, 1, 0)


def test_a_criterion_that_always_differs_is_flagged_always():
    pairs = [JudgedPair("a", {"o": "yes"}, {"o": "no"}), JudgedPair("b", {"o": "no"}, {"o": "yes"})]
    (figure,) = rubric_vs_preference([C("o", "optional", 1)], pairs).criteria
    assert (figure.rate, figure.flag, figure.with_preference) == (1.0, "always", 2)


def test_unanswered_criterion_has_no_rate_and_no_flag():
    (figure,) = rubric_vs_preference([C("x", "optional", 1)], [JudgedPair("a", {}, {})]).criteria
    assert (figure.answered, figure.rate, figure.flag) == (0, None, None)
