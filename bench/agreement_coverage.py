"""How often the agreement figures' bootstrap 95 % intervals cover the truth: a simulation.

Simulated raters with known behaviour label simulated comparisons; each data set goes through the code every
surface uses (`insights.metrics.question_figures`: point figures and the percentile bootstrap over
comparisons, 1,000 resamples), and we count how often each interval holds the coefficient's true value.

- The truth of a coefficient is its value on the population the data are drawn from: here, on one data set of
  `--truth-units` (400,000) comparisons from the same raters and model (the coefficients are ratios of means
  over comparisons, so this is the population value to about 1e-3).
- Raters: a pool of 8 with their own accuracy; each comparison gets 2–5 of them (varying numbers of raters), and
  each vote is then lost with probability 0.1 (missing votes: some comparisons keep a single vote).
- Scenarios:
  * `choice`: A / tie / B with prevalence 0.45 / 0.10 / 0.45; a rater gives the true answer with their
    accuracy (0.55–0.9), else one of the three at random.
  * `paradox`: safe / unsafe with 97 % of responses safe, raters accurate 0.80–0.95, else "unsafe" with
    probability 0.1: raw agreement is high while α and κ stay low (the prevalence paradox) and AC1 stays
    near raw agreement. `paradox_weak`: the same with raters accurate only 0.2–0.5: α and κ near 0, raw
    agreement about 0.9.
  * `preference`: the 7-point scale; a rater answers the true preference plus rounded normal noise
    (sd 0.6–1.5), clipped to −3…+3 (ordinal and interval α, AC2 with quadratic weights).

    python -m bench.agreement_coverage [--sims 1000] [--units 50 200] [--seed 0] [--scenarios choice …]

Prints one Markdown table per scenario (coverage with its Monte Carlo standard error, mean interval width,
truth). A well-calibrated 95 % interval covers in about 95 % of data sets.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np

from insights import metrics as M

POOL = 8


@dataclass(frozen=True)
class Scenario:
    name: str
    n_categories: int
    ordinal: bool
    metrics: tuple[str, ...]

    def raters(self, rng: np.random.Generator) -> np.ndarray:
        if self.name == "choice":
            return rng.uniform(0.55, 0.9, POOL)
        if self.name == "paradox":
            return rng.uniform(0.80, 0.95, POOL)
        if self.name == "paradox_weak":
            return rng.uniform(0.2, 0.5, POOL)
        return rng.uniform(0.6, 1.5, POOL)  # noise sd on the 7-point scale

    def truth(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.name == "choice":
            return rng.choice(3, size=n, p=[0.45, 0.10, 0.45])
        if self.name.startswith("paradox"):
            return (rng.random(n) < 0.03).astype(np.int64)  # 1 = unsafe
        return rng.choice(7, size=n, p=[0.12, 0.16, 0.12, 0.2, 0.14, 0.16, 0.1])

    def answer(self, rng: np.random.Generator, true: np.ndarray, skill: np.ndarray) -> np.ndarray:
        if self.ordinal:
            noisy = true + np.rint(rng.normal(0.0, skill))
            return np.clip(noisy, 0, self.n_categories - 1).astype(np.int64)
        right = rng.random(true.size) < skill
        if self.name.startswith("paradox"):  # unsure, a rater mostly says what nearly everything is: safe
            guess = (rng.random(true.size) < 0.1).astype(np.int64)
        else:
            guess = rng.integers(0, self.n_categories, true.size)
        return np.where(right, true, guess)


SCENARIOS = (
    Scenario("choice", 3, False, ("percent_agreement", "alpha_nominal", "fleiss_kappa", "gwet_ac1")),
    Scenario("paradox", 2, False, ("percent_agreement", "alpha_nominal", "fleiss_kappa", "gwet_ac1")),
    Scenario(
        "preference",
        7,
        True,
        (
            "percent_agreement",
            "alpha_nominal",
            "alpha_ordinal",
            "alpha_interval",
            "fleiss_kappa",
            "gwet_ac1",
            "gwet_ac2",
        ),
    ),
    Scenario("paradox_weak", 2, False, ("percent_agreement", "alpha_nominal", "fleiss_kappa", "gwet_ac1")),
)


def simulate(scenario: Scenario, skills: np.ndarray, rng: np.random.Generator, n_units: int) -> M.Ratings:
    """One data set: 2–5 raters of the pool per comparison, then each vote lost with probability 0.1."""
    k = rng.integers(2, 6, n_units)
    order = np.argsort(rng.random((n_units, POOL)), axis=1)
    take = np.arange(POOL)[None, :] < k[:, None]
    unit = np.repeat(np.arange(n_units), POOL)[take.ravel()]
    rater = order[take]
    keep = rng.random(unit.size) >= 0.1
    unit, rater = unit[keep], rater[keep]
    true = scenario.truth(rng, n_units)
    value = scenario.answer(rng, true[unit], skills[rater])
    return M.Ratings(unit, rater, value, scenario.n_categories, n_units=n_units, n_raters=POOL)


def true_values(
    scenario: Scenario, skills: np.ndarray, rng: np.random.Generator, n_units: int
) -> dict[str, float]:
    r = simulate(scenario, skills, rng, n_units)
    layout, stats = M.question_stats(r, ordinal=scenario.ordinal)
    total = stats.sum(axis=0, keepdims=True)
    return {metric: float(M.metric_values(total, layout, metric)[0]) for metric in scenario.metrics}


def coverage(scenario: Scenario, n_units: int, sims: int, seed: int, truth_units: int) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    skills = scenario.raters(rng)
    truth = true_values(scenario, skills, rng, truth_units)
    hits = {m: 0 for m in scenario.metrics}
    defined = {m: 0 for m in scenario.metrics}
    widths: dict[str, list[float]] = {m: [] for m in scenario.metrics}
    points: dict[str, list[float]] = {m: [] for m in scenario.metrics}
    for s in range(sims):
        r = simulate(scenario, skills, rng, n_units)
        figures = M.question_figures({"q": r}, ordinal={"q"} if scenario.ordinal else (), seed=s)["q"]
        for metric in scenario.metrics:
            ci = figures["ci"][metric]
            if ci is None or figures[metric] is None:
                continue
            defined[metric] += 1
            hits[metric] += ci[0] <= truth[metric] <= ci[1]
            widths[metric].append(ci[1] - ci[0])
            points[metric].append(figures[metric])
    out = {}
    for metric in scenario.metrics:
        n = defined[metric]
        p = hits[metric] / n if n else float("nan")
        out[metric] = {
            "truth": truth[metric],
            "mean": float(np.mean(points[metric])) if n else float("nan"),
            "coverage": p,
            "se": math.sqrt(p * (1 - p) / n) if n else float("nan"),
            "width": float(np.mean(widths[metric])) if n else float("nan"),
            "defined": n,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sims", type=int, default=1000, help="simulated data sets per scenario and size")
    parser.add_argument("--units", type=int, nargs="+", default=[50, 200], help="comparisons per data set")
    parser.add_argument("--truth-units", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="+", default=[s.name for s in SCENARIOS])
    args = parser.parse_args()
    started = time.perf_counter()
    for i, scenario in enumerate(SCENARIOS):
        if scenario.name not in args.scenarios:
            continue
        print(f"\n### {scenario.name}\n")
        print(
            "| coefficient | truth | "
            + " | ".join(f"{u} comparisons: coverage ± se (mean width)" for u in args.units)
            + " |"
        )
        print("|---|---|" + "---|" * len(args.units))
        results = [
            coverage(scenario, u, args.sims, args.seed + 1000 * i, args.truth_units) for u in args.units
        ]
        for metric in scenario.metrics:
            cells = [
                f"{res[metric]['coverage']:.3f} ± {res[metric]['se']:.3f} ({res[metric]['width']:.3f})"
                + ("" if res[metric]["defined"] == args.sims else f", {res[metric]['defined']} defined")
                for res in results
            ]
            print(f"| {metric} | {results[0][metric]['truth']:.3f} | " + " | ".join(cells) + " |")
    print(f"\n{args.sims} data sets per cell, 1,000 resamples each; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
