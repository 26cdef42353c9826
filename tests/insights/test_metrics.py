"""The agreement and margin figures against their reference implementations and hand-built fixtures.

Plain pytest, no Django: `python -m pytest tests.insights.test_metrics.py -p no:django`.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations

import krippendorff
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from irrCAC.raw import CAC
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from insights import metrics as M
from insights.metrics import NO_CONSENSUS, TIE, A, B, Ratings

TOL = 1e-9


# --- helpers ----------------------------------------------------------------------------------------


def random_ratings(
    rng: np.random.Generator, n_units: int, n_raters: int, n_categories: int, p: float
) -> Ratings:
    """Each rater answers each unit with probability p: missing values, unequal ratings per unit."""
    mask = rng.random((n_raters, n_units)) < p
    values = rng.integers(0, n_categories, size=(n_raters, n_units))
    rater, unit = np.nonzero(mask)
    order = rng.permutation(rater.size)  # the layer gives rows in no particular order
    return Ratings(unit[order], rater[order], values[rater, unit][order], n_categories, n_units, n_raters)


def shapes(seed: int, n: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield random_ratings(
            rng,
            n_units=int(rng.integers(1, 40)),
            n_raters=int(rng.integers(1, 9)),
            n_categories=int(rng.integers(1, 8)),
            p=float(rng.uniform(0.15, 1.0)),
        )


def reliability_matrix(r: Ratings) -> np.ndarray:
    data = np.full((r.n_raters, r.n_units), np.nan)
    data[r.rater, r.unit] = r.value
    return data


def finite_or_none(call) -> float | None:
    """A reference value, None where the reference raises or gives NaN/inf (the undefined cases)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(call())
    except (ValueError, ZeroDivisionError, AssertionError):
        return None
    return value if math.isfinite(value) else None


def ref_alpha(r: Ratings, level: str) -> float | None:
    return finite_or_none(
        lambda: krippendorff.alpha(
            reliability_data=reliability_matrix(r),
            level_of_measurement=level,
            value_domain=list(range(r.n_categories)),
        )
    )


def irrcac(r: Ratings, method: str, weights: str = "identity") -> float | None:
    """irrCAC's coefficient (`fleiss` or `gwet`) on the units x raters table, over the value domain
    0..n_categories-1, unrounded. irrCAC's variance needs two rated units, so callers skip data with fewer."""
    table = pd.DataFrame(reliability_matrix(r).T)
    return finite_or_none(
        lambda: getattr(
            CAC(table, weights=weights, categories=list(range(r.n_categories)), digits=30), method
        )()["est"]["coefficient_value"]
    )


def ref_fleiss(r: Ratings) -> float | None:
    return irrcac(r, "fleiss")


def ref_ac1(r: Ratings) -> float | None:
    return irrcac(r, "gwet")


def ref_ac2(r: Ratings) -> float | None:
    return irrcac(r, "gwet", "quadratic")


def ref_percent_agreement(r: Ratings) -> float | None:
    by_unit: dict[int, list[int]] = {}
    for u, v in zip(r.unit.tolist(), r.value.tolist(), strict=True):
        by_unit.setdefault(u, []).append(v)
    shares = []
    for values in by_unit.values():
        if len(values) >= 2:
            pairs = list(combinations(values, 2))
            shares.append(sum(x == y for x, y in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


def ref_cohen_pairs(
    r: Ratings, min_shared: int, weights: str | None = None
) -> list[tuple[int, int, int, float | None]]:
    data = reliability_matrix(r)
    labels = list(range(r.n_categories))
    out = []
    for a, b in combinations(range(r.n_raters), 2):
        shared = ~np.isnan(data[a]) & ~np.isnan(data[b])
        n = int(shared.sum())
        if n >= min_shared and n > 0:
            kappa = finite_or_none(
                lambda a=a, b=b, s=shared: cohen_kappa_score(
                    data[a][s], data[b][s], labels=labels if weights else None, weights=weights
                )
            )
            out.append((a, b, n, kappa))
    return out


def close(mine: float | None, ref: float | None) -> bool:
    if mine is None or ref is None:
        return mine is None and ref is None
    return abs(mine - ref) <= TOL


# --- the data contract ------------------------------------------------------------------------------


def test_from_rows_codes_keys_in_first_seen_order_and_skips_missing():
    rows = [("c1", "ann", "B"), ("c1", "bob", "tie"), ("c2", "ann", None), ("c2", "bob", "A")]
    r, units, raters = Ratings.from_rows(rows, ["A", "tie", "B"])
    assert units == ["c1", "c2"] and raters == ["ann", "bob"]
    assert r.unit.tolist() == [0, 0, 1] and r.rater.tolist() == [0, 1, 1] and r.value.tolist() == [2, 1, 0]
    assert (r.n_units, r.n_raters, r.n_categories) == (2, 2, 3)


def test_from_rows_on_a_fixed_index_keeps_unrated_units():
    r, units, _ = Ratings.from_rows([("c3", "x", 1)], [0, 1], units=["c1", "c2", "c3"])
    assert units == ["c1", "c2", "c3"] and r.n_units == 3 and r.unit.tolist() == [2]
    with pytest.raises(ValueError, match="unknown unit"):
        Ratings.from_rows([("c9", "x", 1)], [0, 1], units=["c1"])


def test_ratings_refuse_bad_codes_and_duplicate_answers():
    with pytest.raises(ValueError, match="value codes"):
        Ratings(np.array([0]), np.array([0]), np.array([3]), 3)
    with pytest.raises(ValueError, match="more than once"):
        Ratings(np.array([0, 0]), np.array([1, 1]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="unknown category"):
        Ratings.from_rows([(1, 1, "maybe")], ["A", "B"])


# --- agreement figures against their references -----------------------------------------------------


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_matches_krippendorff_package_on_random_data(level):
    for r in shapes(seed=1, n=120):
        assert close(M.krippendorff_alpha(r, level), ref_alpha(r, level)), (level, r)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 25),
    st.integers(2, 6),
    st.integers(2, 7),
    st.floats(0.2, 1.0),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["nominal", "ordinal", "interval"]),
)
def test_alpha_matches_reference_for_any_shape(n_units, n_raters, n_categories, p, seed, level):
    r = random_ratings(np.random.default_rng(seed), n_units, n_raters, n_categories, p)
    assert close(M.krippendorff_alpha(r, level), ref_alpha(r, level))


def test_alpha_with_unused_categories_matches_reference_with_value_domain():
    # Codes 1, 2, 4 and 5 never occur: the reference still spaces the interval distances by code
    # and the ordinal ranks by the (empty) frequencies between them.
    r = Ratings(
        np.array([0, 0, 1, 1, 1, 2, 2, 3, 3]),
        np.array([0, 1, 0, 1, 2, 1, 2, 0, 2]),
        np.array([0, 0, 3, 6, 3, 6, 6, 0, 3]),
        7,
    )
    for level in ("nominal", "ordinal", "interval"):
        assert close(M.krippendorff_alpha(r, level), ref_alpha(r, level))


def test_alpha_known_value_from_the_reference_docs():
    data = [
        [np.nan, np.nan, np.nan, np.nan, np.nan, 3, 4, 1, 2, 1, 1, 3, 3, np.nan, 3],
        [1, np.nan, 2, 1, 3, 3, 4, 3, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
        [np.nan, np.nan, 2, 1, 3, 4, 4, np.nan, 2, 1, 1, 3, 3, np.nan, 4],
    ]
    rater, unit = np.nonzero(~np.isnan(data))
    r = Ratings(unit, rater, np.asarray(data)[rater, unit].astype(int) - 1, 4)
    assert round(M.krippendorff_alpha(r, "nominal"), 6) == 0.691358
    assert round(M.krippendorff_alpha(r, "interval"), 6) == 0.810845


@pytest.mark.parametrize(
    ("metric", "reference"), [("fleiss_kappa", ref_fleiss), ("gwet_ac1", ref_ac1), ("gwet_ac2", ref_ac2)]
)
def test_chance_corrected_coefficients_match_irrcac_with_varying_raters_and_missing_votes(metric, reference):
    checked = 0
    for r in shapes(seed=2, n=150):
        # irrCAC's variance divides by (rated units - 1); with a one-category domain it sets p_e = 1 - 1e-15
        # and reports 1.0, where these coefficients are None (nothing to correct for chance).
        if np.count_nonzero(r.sizes) < 2 or r.n_categories < 2:
            continue
        ref = reference(r)
        assert close(getattr(M, metric)(r), ref), (metric, r)
        checked += ref is not None
    assert checked > 50


def test_generalised_fleiss_kappa_equals_statsmodels_with_the_same_raters_on_every_unit():
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        r = random_ratings(
            rng, int(rng.integers(2, 30)), int(rng.integers(2, 7)), int(rng.integers(2, 6)), p=1.0
        )
        want = finite_or_none(lambda r=r: sm_fleiss_kappa(r.counts, method="fleiss"))
        assert close(M.fleiss_kappa(r), want), r
        checked += want is not None
    assert checked > 30


def test_fleiss_kappa_uses_every_unit_whatever_its_number_of_raters():
    # Two units rated twice, two rated three times, one rated once: all count (the one-rating unit in the
    # category shares only), not just the units with the modal number of ratings.
    r = Ratings(
        np.array([0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4]),
        np.array([0, 1, 0, 1, 0, 1, 2, 0, 1, 2, 0]),
        np.array([0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1]),
        2,
    )
    p_a = (1 + 1 + 1 / 3 + 1 / 3) / 4
    pi_1 = (0 + 1 + 2 / 3 + 1 / 3 + 1) / 5
    p_e = pi_1**2 + (1 - pi_1) ** 2
    assert close(M.fleiss_kappa(r), (p_a - p_e) / (1 - p_e))
    assert close(M.fleiss_kappa(r), ref_fleiss(r))
    p_e_gwet = 2 * pi_1 * (1 - pi_1)  # sum_c pi_c (1 - pi_c) / (C - 1), C = 2
    assert close(M.gwet_ac1(r), (p_a - p_e_gwet) / (1 - p_e_gwet))


def test_ac1_stays_high_where_kappa_and_alpha_collapse_the_prevalence_paradox():
    # 40 units, two raters, both say "safe" (0) on 38 and disagree on 2: raw agreement 0.95.
    unit = np.repeat(np.arange(40), 2)
    rater = np.tile([0, 1], 40)
    value = np.zeros(80, int)
    value[[1, 3]] = 1  # rater 1 says "unsafe" on units 0 and 1
    r = Ratings(unit, rater, value, 2)
    assert M.percent_agreement(r) == 0.95
    assert M.fleiss_kappa(r) < 0.01 and M.krippendorff_alpha(r) < 0.01
    assert M.gwet_ac1(r) > 0.94
    assert close(M.gwet_ac1(r), ref_ac1(r))


def test_percent_agreement_matches_a_plain_loop():
    for r in shapes(seed=3, n=150):
        assert close(M.percent_agreement(r), ref_percent_agreement(r))


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_pairs_match_sklearn_on_shared_units(weights):
    for r in shapes(seed=4, n=50):
        for min_shared in (1, 5):
            mine = M.cohen_kappa_pairs(r, min_shared=min_shared, weights=weights)
            ref = ref_cohen_pairs(r, min_shared, weights)
            assert [m[:3] for m in mine] == [x[:3] for x in ref]
            assert all(close(m[3], x[3]) for m, x in zip(mine, ref, strict=True))


def test_cohen_kappa_pairs_need_min_shared_and_give_none_for_one_common_category():
    # Raters 0 and 1 share 20 units, always answering 2; rater 2 shares 19 with each.
    units = np.arange(20)
    r = Ratings(
        np.concatenate([units, units, units[:19]]),
        np.concatenate([np.zeros(20, int), np.ones(20, int), np.full(19, 2)]),
        np.concatenate([np.full(20, 2), np.full(20, 2), np.zeros(19, int)]),
        3,
    )
    assert M.cohen_kappa_pairs(r) == [(0, 1, 20, None)]


@pytest.mark.parametrize(
    ("name", "ratings"),
    [
        (
            "one category only",
            Ratings(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([0, 0, 0, 0]), 1),
        ),
        (
            "one category used",
            Ratings(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), np.array([2, 2, 2, 2]), 3),
        ),
        ("a single annotator", Ratings(np.arange(5), np.zeros(5, int), np.array([0, 1, 2, 1, 0]), 3)),
        ("no unit rated twice", Ratings(np.arange(4), np.arange(4), np.array([0, 1, 0, 1]), 2)),
        ("no ratings at all", Ratings(np.array([], int), np.array([], int), np.array([], int), 3, n_units=4)),
    ],
)
def test_degenerate_data_gives_none_not_an_exception(name, ratings):
    for level in ("nominal", "ordinal", "interval"):
        assert M.krippendorff_alpha(ratings, level) is None, name
    assert M.fleiss_kappa(ratings) is None, name
    # AC1 / AC2 need two categories and a unit rated twice; where everyone gives the one answer used they
    # are 1 (chance agreement sum_c pi_c (1 - pi_c) is 0), which is their point.
    for ac in (M.gwet_ac1, M.gwet_ac2):
        assert ac(ratings) == (1.0 if name == "one category used" else None), name
    assert all(k is None for *_, k in M.cohen_kappa_pairs(ratings, min_shared=1)), name
    agreement = M.percent_agreement(ratings)
    if ratings.sizes.max(initial=0) >= 2:
        assert agreement == 1.0  # everyone agrees when there is one answer to give
    else:
        assert agreement is None
    for metric in M.METRICS:
        ci = M.bootstrap_ci(ratings, metric, n_resamples=50)
        assert ci is None or ci == (1.0, 1.0), (name, metric)
    M.agreement_with_loo_consensus(ratings)


# --- bootstrap ---------------------------------------------------------------------------------------


def plain_resampling_loop(r: Ratings, n_resamples: int, seed: int, figure) -> list[float]:
    """Draw units exactly as documented, rebuild the data unit by unit, and call `figure` on each resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, r.n_units, size=(n_resamples, r.n_units))
    by_unit = [np.flatnonzero(r.unit == u) for u in range(r.n_units)]
    values = []
    for row in draws:
        units, raters, vals = [], [], []
        for new_unit, old_unit in enumerate(row):
            rows = by_unit[old_unit]
            units.extend([new_unit] * rows.size)
            raters.extend(r.rater[rows].tolist())
            vals.extend(r.value[rows].tolist())
        resample = Ratings(
            np.array(units, int),
            np.array(raters, int),
            np.array(vals, int),
            r.n_categories,
            n_units=r.n_units,
            n_raters=r.n_raters,
        )
        value = figure(resample)
        if value is not None:  # undefined resamples are dropped
            values.append(value)
    return values


def percentile_interval(values: list[float]) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def sparse_ratings() -> Ratings:
    """Two pairable units out of ten: many resamples hold none, or only the unanimous one (undefined)."""
    return Ratings(
        np.array([0, 0, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        np.array([0, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1]),
        np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, 2, 0]),
        3,
    )


@pytest.mark.parametrize(
    ("metric", "figure"),
    [
        ("alpha_nominal", lambda r: ref_alpha(r, "nominal")),
        ("alpha_ordinal", lambda r: ref_alpha(r, "ordinal")),
        ("alpha_interval", lambda r: ref_alpha(r, "interval")),
        ("fleiss_kappa", ref_fleiss),
        ("gwet_ac1", ref_ac1),
        ("gwet_ac2", ref_ac2),
        ("percent_agreement", ref_percent_agreement),
    ],
)
def test_bootstrap_interval_equals_a_plain_resampling_loop(metric, figure):
    # Few units and raters: the numbers of ratings per unit change from one resample to another.
    r = random_ratings(np.random.default_rng(7), n_units=14, n_raters=4, n_categories=5, p=0.55)
    loop = plain_resampling_loop(r, n_resamples=300, seed=11, figure=figure)
    fast = M.bootstrap_ci(r, metric, n_resamples=300, seed=11)
    assert fast is not None
    assert np.allclose(fast, percentile_interval(loop), rtol=0, atol=TOL)
    # Here some resamples are undefined: both drop them.
    sparse = sparse_ratings()
    loop = plain_resampling_loop(sparse, n_resamples=300, seed=11, figure=figure)
    assert 0 < len(loop) < 300
    assert np.allclose(
        M.bootstrap_ci(sparse, metric, n_resamples=300, seed=11), percentile_interval(loop), atol=TOL
    )


def test_bootstrap_weights_are_the_documented_draws_whatever_the_chunking():
    draws = np.random.default_rng(3).integers(0, 9, size=(250, 9))
    expected = np.stack([np.bincount(row, minlength=9) for row in draws])
    assert np.array_equal(M.bootstrap_weights(9, 250, seed=3), expected)
    chunked = np.vstack(list(M.weight_chunks(9, 250, seed=3, chunk=7)))
    assert np.array_equal(chunked, expected)


@pytest.mark.parametrize(
    ("f32_limit", "max_scale"),
    [(0, 2**20), (2**24, 1)],
    ids=["float64 product", "non-integer ordinal statistics"],
)
def test_bootstrap_fallback_paths_give_the_same_intervals(monkeypatch, f32_limit, max_scale):
    r = random_ratings(np.random.default_rng(8), n_units=25, n_raters=5, n_categories=6, p=0.6)
    assert set(r.sizes[r.sizes >= 2]) >= {2, 3, 4}  # the ordinal statistics are scaled by lcm(1, 2, 3)
    expected = {metric: M.bootstrap_ci(r, metric, n_resamples=200) for metric in M.METRICS}
    monkeypatch.setattr(M, "_F32_LIMIT", f32_limit)
    monkeypatch.setattr(M, "_MAX_SCALE", max_scale)
    for metric in M.METRICS:
        assert np.allclose(M.bootstrap_ci(r, metric, n_resamples=200), expected[metric], rtol=0, atol=TOL)
    for level in ("ordinal", "interval"):
        assert close(M.krippendorff_alpha(r, level), ref_alpha(r, level))


def test_weights_in_small_chunks_are_the_documented_draws(monkeypatch):
    expected = np.random.default_rng(4).integers(0, 40, size=(30, 40))
    expected = np.vstack([np.bincount(row, minlength=40) for row in expected])
    monkeypatch.setattr(M, "_CHUNK_BYTES", 1)  # one resample per chunk
    assert np.array_equal(M.bootstrap_weights(40, 30, seed=4), expected)


@pytest.mark.parametrize("large", [False, True])
def test_resampling_blocks_side_by_side_equals_resampling_them_stacked(monkeypatch, large):
    """The agreement figures multiply each question's statistics by the weights in turn instead of stacking
    them first (memory): the sums are the stacked ones, in float32 where all are exact, else float64."""
    rng = np.random.default_rng(11)
    blocks = [rng.integers(0, 9, size=(50, w)).astype(np.float64) for w in (3, 1, 4)]
    if large:
        blocks[1] = blocks[1] * 2**20  # sums that float32 cannot hold exactly: the product runs in float64
    monkeypatch.setattr(M, "_CHUNK_BYTES", 50 * 12 * 7)  # several chunks of weights
    stacked = M.resampled_stats(np.hstack(blocks), 40, seed=3)
    assert np.array_equal(M.resampled_blocks(blocks, 40, seed=3), stacked)
    assert stacked.shape == (40, 8)


def test_cohen_kappa_pairs_with_many_raters_count_only_occurring_pairs(monkeypatch):
    r = random_ratings(np.random.default_rng(9), n_units=30, n_raters=7, n_categories=3, p=0.7)
    dense = M.cohen_kappa_pairs(r, min_shared=3)
    monkeypatch.setattr(M, "_DENSE_PAIRS", 0)
    sparse = M.cohen_kappa_pairs(r, min_shared=3)
    assert sparse == dense
    ref = ref_cohen_pairs(r, 3)
    assert [m[:3] for m in sparse] == [x[:3] for x in ref]
    assert all(close(m[3], x[3]) for m, x in zip(sparse, ref, strict=True))


def test_question_figures_agree_with_the_single_figure_functions():
    rng = np.random.default_rng(5)
    pref = random_ratings(rng, 30, 6, 7, 0.5)
    choice = Ratings(pref.unit, pref.rater, np.sign(pref.value - 3) + 1, 3, pref.n_units, pref.n_raters)
    other = random_ratings(rng, 20, 5, 2, 0.6)  # another unit index: its own resamples
    figures = M.question_figures(
        {"preference": pref, "choice": choice, "safety": other},
        ordinal={"preference"},
        n_resamples=200,
        seed=0,
    )
    single = {
        "percent_agreement": M.percent_agreement,
        "alpha_nominal": lambda r: M.krippendorff_alpha(r, "nominal"),
        "alpha_ordinal": lambda r: M.krippendorff_alpha(r, "ordinal"),
        "alpha_interval": lambda r: M.krippendorff_alpha(r, "interval"),
        "fleiss_kappa": M.fleiss_kappa,
        "gwet_ac1": M.gwet_ac1,
        "gwet_ac2": M.gwet_ac2,
    }
    assert set(single) == set(M.METRICS)
    for name, r in (("preference", pref), ("choice", choice), ("safety", other)):
        f = figures[name]
        assert f["ratings"] == r.unit.size
        assert f["rated_units"] == np.count_nonzero(r.sizes) and f["pairable_units"] == np.count_nonzero(
            r.sizes >= 2
        )
        for metric, fn in single.items():
            if name != "preference" and metric in M.ORDINAL_METRICS:
                assert f[metric] is None and f["ci"][metric] is None
                continue
            assert close(f[metric], fn(r)), (name, metric)
            assert f["ci"][metric] == M.bootstrap_ci(r, metric, n_resamples=200, seed=0), (name, metric)


# --- preference structure and annotators on a hand-built fixture ------------------------------------
#
#   unit 0: raters 0, 1, 2 say A (-3), A (-1), B (+2)       consensus A, margin (3 + 1) / 2 / 3
#   unit 1: raters 0, 1, 2, 3 say B (+3), B (+3), tie, A (-1) consensus B, margin 1
#   unit 2: raters 1, 2 say A (-2), B (+1)                   no consensus
#   unit 3: raters 0, 2, 3 say tie, tie, A (-2)              consensus A (one non-tie vote), margin 2/3
#   unit 4: raters 0, 1, 3 say tie, tie, tie                 no consensus
PREF = [
    (0, 0, -3), (0, 1, -1), (0, 2, 2),
    (1, 0, 3), (1, 1, 3), (1, 2, 0), (1, 3, -1),
    (2, 1, -2), (2, 2, 1),
    (3, 0, 0), (3, 2, 0), (3, 3, -2),
    (4, 0, 0), (4, 1, 0), (4, 3, 0),
]  # fmt: skip


def fixture() -> tuple[Ratings, Ratings]:
    unit, rater, pref = (np.array(col) for col in zip(*PREF, strict=True))
    r_pref = Ratings(unit, rater, pref + 3, 7)
    r_choice = Ratings(unit, rater, np.sign(pref) + 1, 3)
    return r_pref, r_choice


def test_consensus_is_the_strict_majority_of_non_tie_choices():
    _, r_choice = fixture()
    side = M.consensus(r_choice)
    assert side.tolist() == [A, B, NO_CONSENSUS, A, NO_CONSENSUS]
    overridden = M.consensus(r_choice, override=np.array([-1, A, B, -1, -1]))
    assert overridden.tolist() == [A, A, B, A, NO_CONSENSUS]


def test_human_margin_and_consensus_share():
    r_pref, r_choice = fixture()
    side = M.consensus(r_choice)
    margin = M.human_margin(r_pref, side)
    assert np.allclose(margin[[0, 1, 3]], [4 / 6, 1.0, 2 / 3])
    assert np.isnan(margin[[2, 4]]).all()
    share, votes = M.consensus_share(r_choice, side)
    assert votes.tolist() == [3, 3, 2, 1, 0]
    assert np.allclose(share[[0, 1, 3]], [2 / 3, 2 / 3, 1.0]) and np.isnan(share[[2, 4]]).all()


def test_agreement_with_leave_one_out_consensus():
    # Rater 0: unit 0 (others A, B: none), unit 1 (others B, tie, A: none), unit 3 (others tie, A: none),
    #          unit 4 (others tie, tie: tie) -> 1 / 1.
    # Rater 1: unit 0 (others A, B: none), unit 1 (others B, tie, A: none), unit 4 (others tie, tie) -> 1 / 1.
    # Rater 2: unit 0 (others A, A: A; said B) -> 0, unit 1 (others B, B, A: B; said tie) -> 0,
    #          unit 3 (others tie, A: none) -> 0 / 2.
    # Rater 3: unit 1 (others B, B, tie: B; said A) -> 0, unit 3 (others tie, tie: tie; said A) -> 0,
    #          unit 4 (others tie, tie; said tie) -> 1 -> 1 / 3.
    _, r_choice = fixture()
    share, n = M.agreement_with_loo_consensus(r_choice)
    assert n.tolist() == [1, 1, 2, 3]
    assert np.allclose(share, [1.0, 1.0, 0.0, 1 / 3])


def test_left_bias_counts_non_tie_wins_by_the_left_side():
    rater = np.array([0, 0, 0, 0, 1, 1, 1])
    choice = np.array([A, B, TIE, A, B, B, A])
    shown_left = np.array([A, A, A, B, B, -1, A])
    share, n = M.left_bias(rater, choice, shown_left, n_raters=3)
    assert n.tolist() == [3, 2, 0]
    assert share[0] == pytest.approx(1 / 3) and share[1] == 1.0 and np.isnan(share[2])


def test_gold_accuracy_median_seconds_and_flags():
    acc, n_gold = M.gold_accuracy(np.array([0, 0, 0, 1]), np.array([A, B, A, TIE]), np.array([A, A, A, TIE]))
    assert n_gold.tolist() == [3, 1] and acc[0] == pytest.approx(2 / 3) and acc[1] == 1.0
    rng = np.random.default_rng(0)
    rater = rng.integers(0, 5, size=200)
    ms = rng.integers(500, 90_000, size=200).astype(float)
    ms[:7] = np.nan
    med, n_timed = M.median_seconds(rater, ms, n_raters=6)
    for a in range(5):
        own = ms[(rater == a) & ~np.isnan(ms)]
        assert n_timed[a] == own.size and med[a] == pytest.approx(np.median(own) / 1000)
    assert n_timed[5] == 0 and np.isnan(med[5])
    flags = M.flag_annotators(
        np.array([2.0, 30.0, 30.0, np.nan]),
        np.array([50, 50, 50, 0]),
        np.array([0.9, 0.5, 0.5, np.nan]),
        np.array([20, 20, 5, 0]),
        project_median_s=30.0,
    )
    assert flags["too_fast"].tolist() == [True, False, False, False]
    assert flags["low_gold_accuracy"].tolist() == [False, True, False, False]
    assert flags["flagged"].tolist() == [True, True, False, False]


# --- margins --------------------------------------------------------------------------------------


def test_model_margin_is_relative_to_the_consensus_side():
    side = np.array([A, B, NO_CONSENSUS])
    margin = M.model_margin(np.array([1.0, 1.0, 0.0]), np.array([0.5, 3.0, 1.0]), side)
    assert margin[:2].tolist() == [0.5, 2.0] and np.isnan(margin[2])


def test_calibration_ece_on_a_hand_computed_case():
    # sigma(0) = 0.5 -> bin [0.5, 0.6); sigma(ln 3) = 0.75 -> bin [0.7, 0.8); sigma(50) = 1.0 -> the last
    # bin, closed at 1.
    margins = np.array([0.0, 0.0, math.log(3), 50.0, np.nan])
    observed = np.array([1.0, 0.5, 0.5, 1.0, 1.0])
    cal = M.calibration(margins, observed, n_bins=10)
    assert cal["n"] == 4
    assert [b["n"] for b in cal["bins"]] == [0, 0, 0, 0, 0, 2, 0, 1, 0, 1]
    assert cal["bins"][5]["mean_predicted"] == pytest.approx(0.5)
    assert cal["bins"][5]["mean_observed"] == pytest.approx(0.75)
    assert cal["bins"][0]["mean_predicted"] is None
    # ece = 2/4 |0.5 - 0.75| + 1/4 |0.75 - 0.5| + 1/4 |1.0 - 1.0|
    assert cal["ece"] == pytest.approx(0.5 * 0.25 + 0.25 * 0.25)
    assert M.calibration(np.array([np.nan]), np.array([1.0]))["ece"] is None


def test_accuracy_by_strength_and_histogram():
    correct = np.array([1.0, 0.0, 1.0, 1.0, np.nan])
    bucket = M.strength_bucket(np.array([1 / 3, 1 / 3, 1.0, np.nan, 1.0]))
    assert bucket.tolist() == [1, 1, 3, -1, 3]
    assert M.accuracy_by_strength(correct, bucket) == [
        {"bucket": 1, "n": 2, "accuracy": 0.5},
        {"bucket": 3, "n": 1, "accuracy": 1.0},
    ]
    counts, edges = M.margin_histogram(np.array([-1.0, 0.5, 0.6, np.nan]), bins=[-2, 0, 2])
    assert counts.tolist() == [1, 2] and edges.tolist() == [-2, 0, 2]


def test_triage_ranks_confident_model_disagreement_and_human_splits():
    votes_a = np.array([3, 1, 2, 0, 3, 1, 2])
    votes_b = np.array([0, 1, 1, 3, 0, 0, 2])
    # unit 0: humans 3-0 for A, model strongly B (pref 4): sigma(4) x 1
    # unit 1: 1-1 split, no model: split 1
    # unit 2: 2-1 for A, model mildly B (pref 0.5): max(sigma(0.5) x 2/3, split 2/3) -> split wins
    # unit 3: 0-3 for B, model agrees: nothing
    # unit 4: 3-0 for A, model B by 1: sigma(1) x 1
    # unit 5: only one vote: left out
    # unit 6: 2-2 split with more votes than unit 1: ranked before it
    model_pref = np.array([4.0, np.nan, 0.5, 2.0, 1.0, 5.0, 0.0])
    ranked = M.triage_rank(votes_a, votes_b, model_pref)
    assert [(u, reason) for u, _, reason in ranked] == [
        (6, "humans_split"),
        (1, "humans_split"),
        (0, "model_vs_humans"),
        (4, "model_vs_humans"),
        (2, "humans_split"),
    ]
    scores = [s for _, s, _ in ranked]
    assert scores == pytest.approx([1.0, 1.0, 1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-1)), 2 / 3])
    assert [u for u, *_ in M.triage_rank(votes_a, votes_b, model_pref, limit=2)] == [6, 1]
    assert [u for u, *_ in M.triage_rank(votes_a, votes_b)] == [6, 1, 2]
