"""Time the whole agreement and margin figure set of `insights.metrics` on synthetic data.

100,000 judgments (k = 3, 60 annotators, 33,334 comparisons; the last one has a single judgment),
every question a project asks: the 7-point preference (ordinal), the overall choice A / tie / B,
helpfulness, harmlessness, safety of each response and the 14 harm categories of each response as
binary questions (34 questions), each with percent agreement, alpha, Fleiss' kappa and 1,000-resample
bootstrap intervals, Cohen's kappa for every annotator pair, the per-annotator figures, consensus,
human margins and the model-margin figures.

    python -m bench.metrics_core_bench [--runs 5]      (from the repository root)

Prints seconds per part and in total, the median of the runs. Starts from plain arrays, as the
Django layer would hand them over, so building the `Ratings` is timed too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from insights import metrics as M

N_JUDGMENTS = 100_000
K = 3
N_RATERS = 60
N_HARM = 14
N_RESAMPLES = 1000


def synthetic(seed: int = 0) -> dict[str, np.ndarray]:
    """Judgments with a latent truth per comparison and a noise level per annotator."""
    rng = np.random.default_rng(seed)
    unit = np.arange(N_JUDGMENTS) // K
    n_units = int(unit[-1]) + 1
    raters = np.argsort(rng.random((n_units, N_RATERS)), axis=1)[:, :K]
    rater = raters.ravel()[:N_JUDGMENTS]
    noise = rng.uniform(0.4, 2.0, N_RATERS)
    noise[:3] = 6.0  # a few careless annotators
    truth = rng.normal(0, 1.5, n_units)
    seen = truth[unit] + noise[rater] * rng.normal(0, 1, N_JUDGMENTS)
    pref = np.clip(np.rint(seen), -3, 3).astype(np.int64)
    data = {"unit": unit, "rater": rater, "n_units": np.array(n_units)}
    data["overall"] = pref + 3
    data["pref_known"] = rng.random(N_JUDGMENTS) > 0.08  # some sources give only a choice
    data["choice"] = np.sign(pref) + 1
    for axis in ("helpfulness", "harmlessness"):
        s = truth[unit] + rng.normal(0, 1, n_units)[unit] * 0.5 + noise[rater] * rng.normal(0, 1, N_JUDGMENTS)
        data[axis] = np.where(np.abs(s) < 0.4, M.TIE, np.where(s < 0, M.A, M.B))
        data[axis + "_answered"] = rng.random(N_JUDGMENTS) > 0.03
    for side in ("a", "b"):
        unsafe_p = rng.beta(0.5, 3.0, n_units)[unit]
        unsafe = rng.random(N_JUDGMENTS) < np.clip(unsafe_p + 0.05 * noise[rater], 0, 1)
        data[f"safety_{side}"] = unsafe.astype(np.int64)
        category_p = rng.beta(0.3, 2.0, (n_units, N_HARM))[unit]
        data[f"harm_{side}"] = (unsafe[:, None] & (rng.random((N_JUDGMENTS, N_HARM)) < category_p)).astype(
            np.int64
        )
    data["shown_left"] = np.where(rng.random(N_JUDGMENTS) < 0.5, M.A, M.B)
    speed = rng.uniform(20_000, 60_000, N_RATERS)
    speed[5] = 4_000  # one annotator clicks through
    data["ms"] = rng.lognormal(0, 0.5, N_JUDGMENTS) * speed[rater]
    n_gold = 3_000
    data["gold_rater"] = rng.integers(0, N_RATERS, n_gold)
    data["gold_value"] = rng.integers(0, 3, n_gold)
    right = rng.random(n_gold) < np.where(data["gold_rater"] < 3, 0.5, 0.9)
    data["gold_answer"] = np.where(right, data["gold_value"], (data["gold_value"] + 1) % 3)
    data["reward_a"] = rng.normal(0, 1, n_units)
    data["reward_b"] = data["reward_a"] + 1.2 * truth + rng.normal(0, 1, n_units)
    return data


def build_questions(d: dict[str, np.ndarray]) -> dict[str, M.Ratings]:
    unit, rater, n_units = d["unit"], d["rater"], int(d["n_units"])

    def ratings(values: np.ndarray, n_categories: int, keep: np.ndarray | None = None) -> M.Ratings:
        if keep is None:
            return M.Ratings(unit, rater, values, n_categories, n_units, N_RATERS)
        return M.Ratings(unit[keep], rater[keep], values[keep], n_categories, n_units, N_RATERS)

    questions = {
        "overall": ratings(d["overall"], 7, d["pref_known"]),
        "choice": ratings(d["choice"], 3),
        "helpfulness": ratings(d["helpfulness"], 3, d["helpfulness_answered"]),
        "harmlessness": ratings(d["harmlessness"], 3, d["harmlessness_answered"]),
        "safety_a": ratings(d["safety_a"], 2),
        "safety_b": ratings(d["safety_b"], 2),
    }
    for side in ("a", "b"):
        for c in range(N_HARM):
            questions[f"harm:{c}:{side}"] = ratings(d[f"harm_{side}"][:, c], 2)
    return questions


def figure_set(d: dict[str, np.ndarray], timings: dict[str, float]) -> dict:
    def timed(name: str, fn: Callable):
        start = time.perf_counter()
        out = fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        return out

    questions = timed("ratings", lambda: build_questions(d))
    figures = timed(
        "agreement+CIs",
        lambda: M.question_figures(questions, ordinal={"overall"}, n_resamples=N_RESAMPLES, seed=0),
    )
    pairs = timed("cohen pairs", lambda: {name: M.cohen_kappa_pairs(r) for name, r in questions.items()})

    def per_annotator():
        loo = M.agreement_with_loo_consensus(questions["choice"])
        gold = M.gold_accuracy(d["gold_rater"], d["gold_answer"], d["gold_value"], N_RATERS)
        bias = M.left_bias(d["rater"], d["choice"], d["shown_left"], N_RATERS)
        med = M.median_seconds(d["rater"], d["ms"], N_RATERS)
        flags = M.flag_annotators(
            med[0], med[1], gold[0], gold[1], project_median_s=float(np.median(d["ms"])) / 1000
        )
        return loo, gold, bias, med, flags

    annotators = timed("per annotator", per_annotator)

    def margins():
        side = {axis: M.consensus(questions[axis]) for axis in ("choice", "helpfulness", "harmlessness")}
        share, votes = M.consensus_share(questions["choice"], side["choice"])
        human = M.human_margin(questions["overall"], side["choice"])
        model = M.model_margin(d["reward_a"], d["reward_b"], side["choice"])
        counts = questions["choice"].counts
        return {
            "histogram": M.margin_histogram(model, bins=40),
            "by_strength": M.accuracy_by_strength(
                np.where(np.isnan(model), np.nan, model > 0), M.strength_bucket(human)
            ),
            "calibration": M.calibration(model, share),
            "triage": M.triage_rank(counts[:, M.A], counts[:, M.B], d["reward_b"] - d["reward_a"], limit=200),
            "votes": votes,
        }

    margin = timed("margins", margins)
    return {"figures": figures, "pairs": pairs, "annotators": annotators, "margins": margin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = synthetic()
    questions = build_questions(data)
    load_before = _load()
    print(
        f"{N_JUDGMENTS:,} judgments, {int(data['n_units']):,} comparisons, {N_RATERS} annotators, "
        f"{len(questions)} questions, {N_RESAMPLES:,} resamples"
    )
    runs: list[dict[str, float]] = []
    totals, cpu = [], []
    for _ in range(args.runs):
        timings: dict[str, float] = {}
        start, start_cpu = time.perf_counter(), time.process_time()
        result = figure_set(data, timings)
        totals.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        runs.append(timings)
    for part in runs[0]:
        print(f"  {part:<15} {statistics.median(t[part] for t in runs):6.3f} s")
    print(
        f"total (median of {args.runs}) {statistics.median(totals):.3f} s wall (fastest {min(totals):.3f} s), "
        f"{statistics.median(cpu):.3f} s CPU (all threads); runs: {' '.join(f'{t:.3f}' for t in totals)}"
    )
    print(f"load average before/after: {load_before} / {_load()}")

    overall, choice = result["figures"]["overall"], result["figures"]["choice"]
    print(
        f"overall: alpha ordinal {overall['alpha_ordinal']:.4f} {_ci(overall['ci']['alpha_ordinal'])}, "
        f"choice: alpha nominal {choice['alpha_nominal']:.4f} {_ci(choice['ci']['alpha_nominal'])}, "
        f"fleiss {choice['fleiss_kappa']:.4f} {_ci(choice['ci']['fleiss_kappa'])}, "
        f"agreement {choice['percent_agreement']:.4f}"
    )
    cal = result["margins"]["calibration"]
    flagged = np.flatnonzero(result["annotators"][4]["flagged"]).tolist()
    print(
        f"pairs with kappa (choice): {len(result['pairs']['choice'])}; flagged annotators: {flagged}; "
        f"ECE {cal['ece']:.4f}; triage head: {result['margins']['triage'][:3]}"
    )


def _load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _ci(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


if __name__ == "__main__":
    main()
