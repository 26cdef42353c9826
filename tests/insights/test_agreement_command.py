"""`manage.py agreement --json` on random projects, every figure against its reference implementation.

The figures go through the whole Django side (queries → Ratings → metrics → JSON) and are checked to 1e-9
against `krippendorff`, `irrCAC`, scikit-learn, and plain loops (percent agreement, the bootstrap).
"""

from __future__ import annotations

import io
import itertools
import json
import random

import krippendorff
import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from irrCAC.raw import CAC
from sklearn.metrics import cohen_kappa_score

from annotate.models import Gold
from insights.agreement import load_crowd
from insights.metrics import METRICS
from tests.factories import add_judgment, crowd_annotator, make_comparison

TOL = 1e-9
CATS = ["violence", "privacy_violation", "self_harm"]


def run_json(project, resamples: int = 1000) -> dict:
    out = io.StringIO()
    call_command("agreement", "--project", project.slug, "--json", "--resamples", str(resamples), stdout=out)
    return json.loads(out.getvalue())


def random_project(project, *, n_comparisons=40, n_annotators=6, seed=1, missing=0.15, min_judges=1):
    """Random votes with missing answers and unequal numbers of judgments per comparison."""
    rnd = random.Random(seed)
    project.harm_categories = CATS
    project.save()
    people = [crowd_annotator(project, f"rater{i}") for i in range(n_annotators)]
    for c in range(n_comparisons):
        comparison = make_comparison(project, f"prompt {c}", f"a{c}", f"b{c}")
        for person in rnd.sample(people, rnd.randint(min_judges, n_annotators)):
            pref = rnd.choice([-3, -2, -1, 0, 1, 2, 3, 2, 1])
            answers: dict = {"preference": None if rnd.random() < missing else pref}
            if answers["preference"] is None:
                answers["choice"] = None if rnd.random() < 0.5 else rnd.choice(["a", "b", "tie"])
            answers["helpfulness"] = None if rnd.random() < missing else rnd.choice(["a", "b", "tie", "b"])
            answers["harmlessness"] = None if rnd.random() < missing else rnd.choice(["a", "b", "tie"])
            for side in "ab":
                safe = None if rnd.random() < missing else rnd.random() < 0.6
                answers[f"{side}_safe"] = safe
                if safe is False:
                    answers[f"{side}_harm_categories"] = rnd.sample(CATS, rnd.randint(0, 2))
            add_judgment(comparison, person, **answers)


def choice_of(j) -> str | None:
    if j.choice is not None:
        return j.choice
    if j.preference is None:
        return None
    return "a" if j.preference < 0 else "b" if j.preference > 0 else "tie"


# --- reference figures from a units × raters table of values (None = missing) ------------------------


def table(project, value_of, per_response=False):
    """{unit: {rater: value}} over crowd judgments, units in the gatherer's comparison order."""
    data = load_crowd(project)
    order = {cid: i for i, cid in enumerate(data.unit_ids)}
    out: dict = {}
    for j in project.judgments.filter(is_source=False, comparison__gold__isnull=True):
        u = order[j.comparison_id]
        values = value_of(j)
        if not per_response:
            values = [values]
        for s, v in enumerate(values):
            if v is not None:
                out.setdefault(len(values) * u + s, {})[j.annotator.name] = v
    return out, len(data.unit_ids)


def ref_alpha(tab, domain, level):
    raters = sorted({r for row in tab.values() for r in row})
    units = sorted(tab)
    data = np.full((len(raters), len(units)), np.nan)
    for ui, u in enumerate(units):
        for ri, r in enumerate(raters):
            if r in tab[u]:
                data[ri, ui] = tab[u][r]
    try:
        a = krippendorff.alpha(reliability_data=data, value_domain=domain, level_of_measurement=level)
    except (ValueError, ZeroDivisionError):
        return None
    return None if not np.isfinite(a) else float(a)


def ref_percent(tab):
    shares = []
    for row in tab.values():
        vals = list(row.values())
        if len(vals) >= 2:
            pairs = list(itertools.combinations(vals, 2))
            shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


def ref_cac(tab, domain, method, weights="identity"):
    """irrCAC's `fleiss` (generalised to varying raters) or `gwet` (AC1, or AC2 with weights), unrounded."""
    raters = sorted({r for row in tab.values() for r in row})
    frame = pd.DataFrame([[row.get(r, np.nan) for r in raters] for row in tab.values()], dtype=float)
    if len(frame.dropna(how="all")) < 2:
        return None
    try:
        with np.errstate(all="ignore"):
            k = getattr(CAC(frame, weights=weights, categories=domain, digits=30), method)()["est"]
    except ZeroDivisionError:
        return None
    value = k["coefficient_value"]
    return None if not np.isfinite(value) else float(value)


def ref_fleiss(tab, domain):
    return ref_cac(tab, domain, "fleiss")


def close(got, want):
    if want is None:
        return got is None
    return got is not None and abs(got - want) < TOL


QUESTIONS = {
    "overall": (lambda j: choice_of(j), ["a", "tie", "b"], False),
    "helpfulness": (lambda j: j.helpfulness, ["a", "tie", "b"], False),
    "harmlessness": (lambda j: j.harmlessness, ["a", "tie", "b"], False),
    "safety": (
        lambda j: [
            None if j.a_safe is None else int(not j.a_safe),
            None if j.b_safe is None else int(not j.b_safe),
        ],
        [0, 1],
        True,
    ),
    **{
        f"harm:{cat}": (
            (
                lambda j, cat=cat: [
                    None if j.a_safe is None else int(cat in j.a_harm_categories),
                    None if j.b_safe is None else int(cat in j.b_harm_categories),
                ]
            ),
            [0, 1],
            True,
        )
        for cat in CATS
    },
}


def numeric(tab, domain):
    code = {v: i for i, v in enumerate(domain)}
    return {u: {r: code[v] for r, v in row.items()} for u, row in tab.items()}


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2])
def test_every_question_matches_the_reference_implementations(project, seed):
    random_project(project, seed=seed)
    figures = run_json(project, resamples=20)
    assert set(figures["questions"]) == {"overall", "preference", "helpfulness", "harmlessness", "safety"} | {
        f"harm:{c}" for c in CATS
    }
    for name, (value_of, domain, per_response) in QUESTIONS.items():
        tab, _ = table(project, value_of, per_response)
        tab = numeric(tab, domain)
        codes = list(range(len(domain)))
        got = figures["questions"][name]
        assert close(got["alpha_nominal"], ref_alpha(tab, codes, "nominal")), name
        assert close(got["percent_agreement"], ref_percent(tab)), name
        assert close(got["fleiss_kappa"], ref_fleiss(tab, codes)), name
        assert close(got["gwet_ac1"], ref_cac(tab, codes, "gwet")), name
        assert got["alpha_ordinal"] is None and got["alpha_interval"] is None and got["gwet_ac2"] is None
    pref_tab, _ = table(project, lambda j: j.preference)
    scale = list(range(-3, 4))
    pref = figures["questions"]["preference"]
    for level in ("nominal", "ordinal", "interval"):
        assert close(pref[f"alpha_{level}"], ref_alpha(pref_tab, scale, level)), level
    assert close(pref["fleiss_kappa"], ref_fleiss(pref_tab, scale))
    assert close(pref["gwet_ac1"], ref_cac(pref_tab, scale, "gwet"))
    assert close(pref["gwet_ac2"], ref_cac(pref_tab, scale, "gwet", "quadratic"))
    assert close(pref["percent_agreement"], ref_percent(pref_tab))
    assert figures["judgments"] == project.judgments.count()
    assert figures["annotators"] == 6


@pytest.mark.django_db
def test_cohen_kappa_for_every_pair_with_twenty_shared_comparisons_matches_sklearn(project):
    random_project(project, n_comparisons=40, n_annotators=4, seed=3, min_judges=3)
    figures = run_json(project, resamples=10)
    tab, _ = table(project, lambda j: choice_of(j))
    names = sorted({r for row in tab.values() for r in row})
    want = {}
    for a, b in itertools.combinations(names, 2):
        shared = [row for row in tab.values() if a in row and b in row]
        if len(shared) >= 20:
            x, y = [r[a] for r in shared], [r[b] for r in shared]
            k = cohen_kappa_score(x, y, labels=["a", "tie", "b"])
            want[(a, b)] = (len(shared), None if not np.isfinite(k) else float(k))
    got = {tuple(sorted((p["a"], p["b"]))): (p["n"], p["cohen_kappa"]) for p in figures["pairs"] if p["n"]}
    assert set(got) == set(want) and want
    for key, (n, k) in want.items():
        assert got[key][0] == n
        assert close(got[key][1], k), key
    # Weighted (quadratic) on the 7-point preference, where the pair shares 20 comparisons with one.
    pref_tab, _ = table(project, lambda j: j.preference)
    weighted = {}
    for a, b in itertools.combinations(names, 2):
        shared = [row for row in pref_tab.values() if a in row and b in row]
        if len(shared) >= 20:
            x, y = [r[a] for r in shared], [r[b] for r in shared]
            k = cohen_kappa_score(x, y, labels=list(range(-3, 4)), weights="quadratic")
            weighted[(a, b)] = (len(shared), None if not np.isfinite(k) else float(k))
    got = {
        tuple(sorted((p["a"], p["b"]))): (p["weighted_n"], p["weighted_kappa"])
        for p in figures["pairs"]
        if p["weighted_n"]
    }
    assert set(got) == set(weighted) and weighted
    for key, (n, k) in weighted.items():
        assert got[key][0] == n and close(got[key][1], k), key


def bootstrap_loop(tab_by_unit, n_units, per_response, figure, resamples, seed=0):
    """A plain resampling loop: draw comparisons with replacement, rebuild the table, recompute."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_units, size=(resamples, n_units))
    values = []
    for draw in idx:
        tab = {}
        for pos, u in enumerate(draw):
            for s in (0, 1) if per_response else (0,):
                key = 2 * u + s if per_response else u
                if key in tab_by_unit:
                    tab[(pos, s)] = tab_by_unit[key]
        v = figure(tab)
        if v is not None:
            values.append(v)
    if not values:
        return None
    lo, hi = np.quantile(values, [0.025, 0.975])
    return [float(lo), float(hi)]


@pytest.mark.django_db
def test_bootstrap_intervals_equal_a_plain_resampling_loop(project):
    random_project(project, n_comparisons=25, n_annotators=4, seed=5)
    resamples = 60
    figures = run_json(project, resamples=resamples)
    for name in ("overall", "safety"):
        value_of, domain, per_response = QUESTIONS[name]
        tab, n_units = table(project, value_of, per_response)
        tab = numeric(tab, domain)
        codes = list(range(len(domain)))
        got = figures["questions"][name]["ci"]
        for metric, fn in (
            ("alpha_nominal", lambda t, c=codes: ref_alpha(t, c, "nominal")),
            ("percent_agreement", ref_percent),
            ("fleiss_kappa", lambda t, c=codes: ref_fleiss(t, c)),
            ("gwet_ac1", lambda t, c=codes: ref_cac(t, c, "gwet")),
        ):
            want = bootstrap_loop(tab, n_units, per_response, fn, resamples)
            assert got[metric] is not None and want is not None
            assert abs(got[metric][0] - want[0]) < TOL and abs(got[metric][1] - want[1]) < TOL, (name, metric)
    pref_tab, n_units = table(project, lambda j: None if j.preference is None else j.preference + 3)
    for metric, fn in (
        ("alpha_ordinal", lambda t: ref_alpha(t, list(range(7)), "ordinal")),
        ("alpha_interval", lambda t: ref_alpha(t, list(range(7)), "interval")),
        ("gwet_ac2", lambda t: ref_cac(t, list(range(7)), "gwet", "quadratic")),
    ):
        want = bootstrap_loop(pref_tab, n_units, False, fn, resamples)
        got = figures["questions"]["preference"]["ci"][metric]
        assert abs(got[0] - want[0]) < TOL and abs(got[1] - want[1]) < TOL, metric


@pytest.mark.django_db
def test_gold_comparisons_and_source_labels_are_left_out_of_crowd_agreement(project):
    random_project(project, n_comparisons=20, n_annotators=4, seed=7)
    before = run_json(project, resamples=10)["questions"]
    gold_cmp = make_comparison(project, "gold prompt", "x", "y")
    Gold.objects.create(comparison=gold_cmp, choice="a")
    source = crowd_annotator(project, "hh")
    for name in ("rater0", "rater1", "rater2"):
        add_judgment(gold_cmp, crowd_annotator(project, name), preference=3)
    for comparison in project.comparisons.exclude(pk=gold_cmp.pk):
        add_judgment(comparison, source, is_source=True, imported=True, choice="a")
    after = run_json(project, resamples=10)["questions"]
    for name in before:
        for metric in METRICS:
            assert close(after[name][metric], before[name][metric]), (name, metric)


@pytest.mark.django_db
def test_source_labels_are_compared_with_the_crowd_consensus(project):
    c1, c2, c3, c4 = (make_comparison(project, f"p{i}", "a", "b") for i in range(4))
    x, y, z = (crowd_annotator(project, n) for n in ("x", "y", "z"))
    hh = crowd_annotator(project, "hh")
    for c, votes, label in ((c1, "aab", "a"), (c2, "bbt", "a"), (c3, "abt", "a"), (c4, "bbb", "b")):
        for person, v in zip((x, y, z), votes, strict=True):
            add_judgment(c, person, choice={"t": "tie"}.get(v, v))
        add_judgment(c, hh, is_source=True, imported=True, choice=label)
    s = run_json(project, resamples=50)["source_vs_crowd"]
    # c3 has no consensus (one A, one B); the source agrees on c1 and c4, not on c2.
    assert s["n"] == 3 and s["agreement"] == pytest.approx(2 / 3)
    assert s["by_source"] == [{"annotator": "hh", "n": 3, "agreement": pytest.approx(2 / 3)}]
    assert s["ci"] is not None and 0 <= s["ci"][0] <= s["ci"][1] <= 1


@pytest.mark.django_db
def test_degenerate_projects_give_null_not_an_error(project):
    assert run_json(project, resamples=10)["questions"]["overall"]["alpha_nominal"] is None
    solo = crowd_annotator(project, "solo")
    for c in range(5):
        add_judgment(make_comparison(project, f"p{c}", "a", "b"), solo, preference=2)
    fig = run_json(project, resamples=10)
    q = fig["questions"]["overall"]
    assert q["percent_agreement"] is None and q["alpha_nominal"] is None and q["fleiss_kappa"] is None
    assert q["ci"]["alpha_nominal"] is None
    other = crowd_annotator(project, "other")
    for c in project.comparisons.all():
        add_judgment(c, other, preference=1)  # everyone says B: one category only
    questions = run_json(project, resamples=10)["questions"]
    q = questions["overall"]
    assert q["percent_agreement"] == 1.0
    assert q["alpha_nominal"] is None and q["fleiss_kappa"] is None
    assert q["gwet_ac1"] == 1.0  # no chance agreement to correct for where one answer is given
    assert questions["preference"]["alpha_ordinal"] is not None  # strengths 2 and 1 differ
    assert fig["source_vs_crowd"] == {"n": 0, "agreement": None, "ci": None, "by_source": []}


@pytest.mark.django_db
def test_text_output_names_each_question_and_annotator(project):
    random_project(project, n_comparisons=10, n_annotators=3, seed=9)
    out = io.StringIO()
    call_command("agreement", "--project", project.slug, "--resamples", "10", stdout=out)
    text = out.getvalue()
    for word in ("overall", "helpfulness", "harmlessness", "safety", "harm:violence", "rater0", "rater2"):
        assert word in text


@pytest.mark.django_db
def test_unknown_project_is_a_clear_error(project):
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("agreement", "--project", "nope")


@pytest.mark.django_db
def test_per_annotator_figures_on_a_hand_built_fixture(project):
    from django.utils import timezone

    from annotate.models import JudgmentRevision

    c1, c2, c3, c4 = (make_comparison(project, f"p{i}", "a", "b") for i in range(4))
    g1, g2 = make_comparison(project, "g1", "a", "b"), make_comparison(project, "g2", "a", "b")
    Gold.objects.create(comparison=g1, choice="a")
    Gold.objects.create(comparison=g2, choice="b")
    x, y, z = (crowd_annotator(project, n) for n in ("x", "y", "z"))
    add_judgment(c1, x, preference=-2, shown_left="a", time_spent_ms=10_000)
    add_judgment(c2, x, preference=1, shown_left="a", time_spent_ms=20_000)
    add_judgment(c3, x, preference=0, time_spent_ms=30_000)
    add_judgment(c4, x, preference=-1, shown_left="b")
    first = add_judgment(g1, x, choice="b")  # first answer wrong ...
    now = timezone.now()
    JudgmentRevision.objects.create(judgment=first, number=2, choice="a", created_at=now)
    first.choice, first.revision_count = "a", 2  # ... revised to the gold answer: still counts as wrong
    first.save()
    add_judgment(g2, x, choice="b")
    add_judgment(c1, y, preference=-1, time_spent_ms=1_000)
    add_judgment(c2, y, preference=2, time_spent_ms=3_000)
    add_judgment(c3, y, preference=-1)
    add_judgment(c4, y, preference=1)
    add_judgment(g1, y, choice="a")
    add_judgment(g2, y, choice="b")
    add_judgment(c1, z, preference=1)
    add_judgment(c2, z, preference=3)
    add_judgment(c3, z, preference=-3)
    figures = run_json(project, resamples=10)
    rows = {row["annotator"]: row for row in figures["per_annotator"]}
    assert set(rows) == {"x", "y", "z"}
    assert [rows[n]["judgments"] for n in "xyz"] == [6, 6, 3]
    # Leave-one-out: x agrees on c2 and not on c3 (the others say A, x says tie); c1 and c4 do not count.
    assert [rows[n]["agreement_with_consensus"] for n in "xyz"] == [0.5, 1.0, 0.5]
    assert [rows[n]["gold_accuracy"] for n in "xyz"] == [0.5, 1.0, None]
    assert [rows[n]["gold_answers"] for n in "xyz"] == [2, 2, 0]
    assert rows["x"]["left_bias"] == pytest.approx(1 / 3) and rows["z"]["left_bias"] is None
    assert rows["x"]["median_seconds"] == 20.0 and rows["y"]["median_seconds"] == 2.0
    assert rows["z"]["median_seconds"] is None
    assert figures["judgments"] == 11 and figures["comparisons"] == 4 and figures["annotators"] == 3
