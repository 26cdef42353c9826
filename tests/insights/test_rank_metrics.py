"""Ranking agreement (insights/rank_metrics.py) against its references, to 1e-9: Kendall's W through
scipy's Friedman statistic, ordinal alpha through the `krippendorff` package, pairwise agreement against a
hand-worked fixture and a second formulation, and the bootstrap against a plain resampling loop."""

from __future__ import annotations

import itertools
import random

import krippendorff
import numpy as np
import pytest
from scipy.stats import friedmanchisquare, rankdata

from insights import metrics as M
from insights import rank_metrics as R


def random_rankings(n_items: int, n_raters: int, seed: int, *, ties: bool = True, partial: bool = True):
    """(item, rater, tiers) rows: items of 2..5 responses, each ranked by a random subset of raters that
    mostly agree with a hidden order; ties and (with `partial`) raters who rank some items not at all."""
    rng = random.Random(seed)
    rows = []
    for item in range(n_items):
        k = rng.randint(2, 5)
        truth = [f"{item}-{j}" for j in range(k)]
        for rater in range(n_raters):
            if partial and rng.random() < 0.3:
                continue
            order = sorted(truth, key=lambda response: truth.index(response) + rng.gauss(0, 1.2))
            tiers: list[list[str]] = []
            for response in order:
                if ties and tiers and rng.random() < 0.25:
                    tiers[-1].append(response)
                else:
                    tiers.append([response])
            rows.append((item, rater, tiers))
    return rows


def test_mid_ranks_are_scipys_average_ranks():
    tiers = [["a"], ["b", "c"], ["d"], ["e", "f", "g"]]
    ranks = dict(R.mid_ranks(tiers))
    assert ranks == {"a": 1, "b": 2.5, "c": 2.5, "d": 4, "e": 6, "f": 6, "g": 6}
    tier_of = {r: t for t, tier in enumerate(tiers) for r in tier}
    assert list(rankdata([tier_of[x] for x in "abcdefg"])) == [ranks[x] for x in "abcdefg"]


def test_kendall_w_is_friedman_chi_square_over_m_n_minus_1_with_ties():
    rows = random_rankings(40, 5, seed=1, partial=False)
    r, units, _ = R.Rankings.from_tiers(rows)
    w = R.kendall_w_units(r)
    checked = 0
    for u, item in enumerate(units):
        tiers = [t for i, _, t in rows if i == item]
        responses = sorted({x for t in tiers for tier in t for x in tier})
        matrix = np.array([[dict(R.mid_ranks(t))[x] for x in responses] for t in tiers])
        m, n = matrix.shape
        if n < 3 or all(len(set(row)) == 1 for row in matrix):  # scipy needs 3 treatments
            continue
        chi2 = friedmanchisquare(*matrix.T).statistic
        assert w[u] == pytest.approx(chi2 / (m * (n - 1)), abs=1e-9)
        checked += 1
    assert checked > 20
    defined = w[np.isfinite(w)]
    assert R.kendall_w(r) == pytest.approx(defined.mean(), abs=1e-9)


def test_kendall_w_hand_worked():
    # 3 raters, 3 responses, no ties: rank sums 3, 6, 9 → S = 9 + 0 + 9 = 18, W = 12·18 / (9·24) = 1
    rows = [("x", a, [["p"], ["q"], ["r"]]) for a in "abc"]
    r, _, _ = R.Rankings.from_tiers(rows)
    assert R.kendall_w(r) == pytest.approx(1.0, abs=1e-12)
    # Two raters, two responses, opposite orders: S = 0, W = 0; everyone tying everything: undefined
    r, _, _ = R.Rankings.from_tiers([("x", "a", [["p"], ["q"]]), ("x", "b", [["q"], ["p"]])])
    assert R.kendall_w(r) == 0.0
    r, _, _ = R.Rankings.from_tiers([("x", "a", [["p", "q"]]), ("x", "b", [["p", "q"]])])
    assert R.kendall_w(r) is None


def test_kendall_w_counts_only_raters_who_ranked_every_response():
    rows = [
        ("x", "a", [["p"], ["q"], ["r"]]),
        ("x", "b", [["p"], ["q"], ["r"]]),
        ("x", "c", [["r"], ["q"]]),  # left p out: not in W, still in the pairwise and alpha figures
    ]
    r, _, _ = R.Rankings.from_tiers(rows)
    assert R.kendall_w(r) == pytest.approx(1.0, abs=1e-12)


def test_ordinal_alpha_is_the_krippendorff_package_on_the_ranks():
    rows = random_rankings(60, 6, seed=2)
    r, _, raters = R.Rankings.from_tiers(rows)
    matrix = np.full((r.n_raters, r.n_responses), np.nan)
    matrix[r.rater, r.response] = r.rank
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert R.alpha_ordinal(r) == pytest.approx(expected, abs=1e-9)


def test_pairwise_agreement_hand_worked():
    rows = [
        ("x", "a", [["p"], ["q"], ["r"]]),
        ("x", "b", [["p"], ["q", "r"]]),
        ("x", "c", [["r"], ["p"], ["q"]]),
        ("y", "a", [["s"], ["t"]]),  # one rater: nothing to compare
    ]
    # response pairs pq, pr, qr — a: <,<,<  b: <,<,=  c: <,>,>
    # (a,b) agree on pq, pr = 2; (a,c) pq = 1; (b,c) pq = 1 → 4 of 9
    r, _, _ = R.Rankings.from_tiers(rows)
    assert R.pairwise_agreement(r) == pytest.approx(4 / 9, abs=1e-12)


def test_pairwise_agreement_by_a_second_formulation():
    rows = random_rankings(50, 5, seed=3)
    r, _, _ = R.Rankings.from_tiers(rows)
    # Loop over items, rater pairs and response pairs, with the relation read from the tiers directly.
    agree = total = 0
    by_item: dict = {}
    for item, _rater, tiers in rows:
        by_item.setdefault(item, []).append({x: t for t, tier in enumerate(tiers) for x in tier})
    for rankings in by_item.values():
        for one, two in itertools.combinations(rankings, 2):
            for x, y in itertools.combinations(sorted(set(one) & set(two)), 2):
                total += 1
                agree += np.sign(one[x] - one[y]) == np.sign(two[x] - two[y])
    assert R.pairwise_agreement(r) == pytest.approx(agree / total, abs=1e-12)


def test_pairwise_agreement_is_percent_agreement_on_the_implied_pairs_when_every_item_is_complete():
    # With every rater ranking every item, each response pair has the same number of ratings, so the mean over
    # pairs (metrics.percent_agreement on A / tie / B) equals the pooled share.
    rows = random_rankings(30, 4, seed=4, partial=False)
    r, _, _ = R.Rankings.from_tiers(rows)
    implied = []
    for item, rater, tiers in rows:
        tier_of = {x: t for t, tier in enumerate(tiers) for x in tier}
        for x, y in itertools.combinations(sorted(tier_of), 2):
            implied.append(
                (
                    (item, x, y),
                    rater,
                    M.A if tier_of[x] < tier_of[y] else M.B if tier_of[x] > tier_of[y] else M.TIE,
                )
            )
    ratings, _, _ = M.Ratings.from_rows(implied, [M.A, M.TIE, M.B])
    assert R.pairwise_agreement(r) == pytest.approx(M.percent_agreement(ratings), abs=1e-12)


def _resample(rows, idx, units):
    """The rows of a bootstrap resample: drawn item copies become distinct items with distinct responses."""
    out = []
    for copy, u in enumerate(idx):
        for item, rater, tiers in rows:
            if item == units[u]:
                out.append(((copy, item), rater, [[(copy, x) for x in tier] for tier in tiers]))
    return out


def test_bootstrap_intervals_equal_a_plain_resampling_loop():
    rows = random_rankings(25, 4, seed=5)
    units = sorted({item for item, _, _ in rows}) + ["unrated"]  # an item nobody ranked is still a unit
    r, _, _ = R.Rankings.from_tiers(rows, units=units)
    n_resamples = 120
    figures = R.ranking_figures(r, n_resamples=n_resamples, seed=7)
    idx = np.random.default_rng(7).integers(0, len(units), size=(n_resamples, len(units)))
    values = {name: [] for name in R.RANK_METRICS}
    for b in range(n_resamples):
        resampled, _, _ = R.Rankings.from_tiers(_resample(rows, idx[b], units))
        for name, fn in (("kendall_w", R.kendall_w), ("alpha_ordinal", R.alpha_ordinal),
                         ("pairwise_agreement", R.pairwise_agreement)):  # fmt: skip
            value = fn(resampled)
            if value is not None:
                values[name].append(value)
    for name in R.RANK_METRICS:
        lo, hi = np.quantile(values[name], [0.025, 0.975])
        assert figures["ci"][name] == pytest.approx([lo, hi], abs=1e-9), name
    assert figures["kendall_w"] == pytest.approx(R.kendall_w(r), abs=1e-12)
    assert figures["alpha_ordinal"] == pytest.approx(R.alpha_ordinal(r), abs=1e-12)
    assert figures["pairwise_agreement"] == pytest.approx(R.pairwise_agreement(r), abs=1e-12)
    assert figures["rankings"] == len(rows)
    assert figures["rated_units"] == len(units) - 1


def test_no_rankings_gives_none_not_errors():
    r, _, _ = R.Rankings.from_tiers([], units=["a", "b"])
    figures = R.ranking_figures(r, n_resamples=10)
    assert figures["kendall_w"] is None and figures["alpha_ordinal"] is None
    assert figures["pairwise_agreement"] is None and figures["ci"]["kendall_w"] is None
    assert figures["rankings"] == 0


def test_bad_rankings_are_refused():
    with pytest.raises(ValueError, match="more than once"):
        R.Rankings.from_tiers([("x", "a", [["p"], ["p"]])])
    with pytest.raises(ValueError, match="more than one unit"):
        R.Rankings.from_tiers([("x", "a", [["p"], ["q"]]), ("y", "b", [["p"], ["r"]])])
