"""End to end: a `raw` file of several annotators' votes, imported, then `agreement --json`; the figures
equal the reference implementations computed from the file's rows alone."""

from __future__ import annotations

import io
import itertools
import json
import random

import krippendorff
import numpy as np
import pytest
from django.core.management import call_command
from sklearn.metrics import cohen_kappa_score

from curation import importers

TOL = 1e-9


def raw_rows(seed=11, n_prompts=30, names=("amy", "ben", "cat", "dan")):
    rnd = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        a, b = f"Answer {i} one", f"Answer {i} two"
        for name in rnd.sample(names, rnd.randint(2, len(names))):
            pref = rnd.choice([-3, -2, -1, 0, 1, 2, 3, None])
            flipped = rnd.random() < 0.3  # the same pair named in the other order: signs flip on import
            row = {
                "prompt": f"Question number {i}?",
                "response_a": b if flipped else a,
                "response_b": a if flipped else b,
                "annotator": name,
                "preference": None if pref is None else (-pref if flipped else pref),
                "choice": None if pref is not None else rnd.choice(["a", "b", "tie"]),
                "a_safe": rnd.random() < 0.7,
                "b_safe": rnd.random() < 0.7,
                "time_spent_ms": rnd.randint(2_000, 60_000),
                "shown_left": rnd.choice(["a", "b"]),
            }
            rows.append((i, name, flipped, row))
    return rows


def canonical_choice(flipped, row):
    if row["preference"] is not None:
        p = -row["preference"] if flipped else row["preference"]
        return "a" if p < 0 else "b" if p > 0 else "tie"
    c = row["choice"]
    return {"a": "b", "b": "a"}.get(c, c) if flipped else c


def first_seen_order(rows):
    """Canonical A is the response that arrived first: the first row of each prompt decides."""
    first = {}
    for i, _, flipped, _ in rows:
        first.setdefault(i, flipped)
    return first


@pytest.mark.django_db
def test_raw_import_then_agreement_json_reproduces_the_reference_figures(project, tmp_path):
    rows = raw_rows()
    path = tmp_path / "votes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for *_, r in rows))
    importers.import_file(path, project=project, fmt="raw")
    out = io.StringIO()
    call_command("agreement", "--project", project.slug, "--json", stdout=out)
    figures = json.loads(out.getvalue())

    first = first_seen_order(rows)
    table: dict[int, dict[str, str]] = {}
    safety: dict[tuple[int, int], dict[str, int]] = {}
    for i, name, flipped, row in rows:
        # Relative to the canonical order: flip when this row's order differs from the first row's.
        rel = flipped != first[i]
        table.setdefault(i, {})[name] = canonical_choice(rel, row)
        sides = ("b_safe", "a_safe") if rel else ("a_safe", "b_safe")
        for s, key in enumerate(sides):
            safety.setdefault((i, s), {})[name] = int(not row[key])
    names = sorted({n for _, n, _, _ in rows})
    code = {"a": 0, "tie": 1, "b": 2}

    def matrix(tab, encode):
        units = sorted(tab)
        m = np.full((len(names), len(units)), np.nan)
        for u, unit in enumerate(units):
            for r, name in enumerate(names):
                if name in tab[unit]:
                    m[r, u] = encode(tab[unit][name])
        return m

    q = figures["questions"]
    want = krippendorff.alpha(
        reliability_data=matrix(table, code.get), value_domain=[0, 1, 2], level_of_measurement="nominal"
    )
    assert abs(q["overall"]["alpha_nominal"] - want) < TOL
    want = krippendorff.alpha(
        reliability_data=matrix(safety, float), value_domain=[0, 1], level_of_measurement="nominal"
    )
    assert abs(q["safety"]["alpha_nominal"] - want) < TOL
    assert figures["judgments"] == len(rows) and figures["comparisons"] == 30 and figures["annotators"] == 4
    for a, b in itertools.combinations(names, 2):
        shared = [t for t in table.values() if a in t and b in t]
        pair = [p for p in figures["pairs"] if {p["a"], p["b"]} == {a, b}]
        if len(shared) < 20:
            assert not pair
            continue
        x, y = (
            ([t[a] for t in shared], [t[b] for t in shared])
            if pair[0]["a"] == a
            else ([t[b] for t in shared], [t[a] for t in shared])
        )
        assert abs(pair[0]["cohen_kappa"] - cohen_kappa_score(x, y, labels=["a", "tie", "b"])) < TOL
    per = {r["annotator"]: r for r in figures["per_annotator"]}
    assert set(per) == set(names)  # raw annotators by their imported names
    for name in names:
        times = [r["time_spent_ms"] / 1000 for _, n, _, r in rows if n == name]
        assert per[name]["median_seconds"] == pytest.approx(float(np.median(times)), abs=1e-12)
        assert per[name]["judgments"] == len(times)
