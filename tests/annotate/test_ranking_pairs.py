"""The pure part of rankings: which tiers are a ranking, and the pairs a ranking implies."""

from __future__ import annotations

from annotate.rankings import implied_pairs, outcome_for, tiers_problem


def test_strict_order_implies_every_pair_better_first():
    assert implied_pairs([[3], [1], [2]]) == [(3, 1, "a"), (3, 2, "a"), (1, 2, "a")]


def test_a_tier_implies_ties_inside_it_and_wins_over_lower_tiers():
    pairs = implied_pairs([[5, 6], [7], [8]])
    assert pairs == [(5, 6, "tie"), (5, 7, "a"), (5, 8, "a"), (6, 7, "a"), (6, 8, "a"), (7, 8, "a")]


def test_k_responses_give_k_choose_2_pairs():
    for k in range(3, 10):
        assert len(implied_pairs([[i] for i in range(k)])) == k * (k - 1) // 2


def test_outcome_relative_to_the_comparisons_order():
    assert outcome_for((3, 1, "a"), response_a=3) == "a"
    assert outcome_for((3, 1, "a"), response_a=1) == "b"
    assert outcome_for((3, 1, "tie"), response_a=1) == "tie"


def test_tiers_must_be_a_permutation_of_the_shown_responses():
    assert tiers_problem([[1], [2, 3]], [1, 2, 3]) == ""
    assert "missing: 3" in tiers_problem([[1], [2]], [1, 2, 3])
    assert "more than once: 2" in tiers_problem([[1, 2], [2, 3]], [1, 2, 3])
    assert "Not a response of this item: 9" in tiers_problem([[1], [2], [3, 9]], [1, 2, 3])
    assert "Tier 2" in tiers_problem([[1], [], [2, 3]], [1, 2, 3])
    assert "not a response id" in tiers_problem([[1], ["2"], [3]], [1, 2, 3])
    assert "list of tiers" in tiers_problem({"a": 1}, [1, 2, 3])
