"""Time the ranking agreement figures of `insights.rank_metrics` on synthetic rankings.

20,000 items of 3 to 9 responses, each ranked by 3 of 50 annotators who mostly agree (no ties): 60,000
rankings. Kendall's W, ordinal alpha on the ranks and pairwise agreement, each with its 1,000-resample
bootstrap interval over items.

    python -m bench.rank_metrics_bench [--runs 5]      (from the repository root)

Prints the CPU seconds of building the `Rankings` from tiers and of the figures, the median of the runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from insights import rank_metrics as R

N_ITEMS = 20_000
RATERS_PER_ITEM = 3
N_RATERS = 50


def rows(seed: int = 0) -> list[tuple[int, int, list[list[str]]]]:
    rng = random.Random(seed)
    out = []
    for item in range(N_ITEMS):
        ids = [f"{item}-{j}" for j in range(rng.randint(3, 9))]
        for rater in rng.sample(range(N_RATERS), RATERS_PER_ITEM):
            order = sorted(ids, key=lambda x: ids.index(x) + rng.gauss(0, 1.5))
            out.append((item, rater, [[x] for x in order]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    data = rows()
    build, figures = [], []
    for _ in range(runs):
        start = time.process_time()
        rankings, _, _ = R.Rankings.from_tiers(data)
        middle = time.process_time()
        result = R.ranking_figures(rankings)
        build.append(middle - start)
        figures.append(time.process_time() - middle)
    print(f"{result['rankings']:,} rankings of {result['rated_units']:,} items")
    print(f"build from tiers  {statistics.median(build):.2f} s CPU")
    print(f"figures, with CIs {statistics.median(figures):.2f} s CPU")
    print({k: round(result[k], 4) for k in R.RANK_METRICS})


if __name__ == "__main__":
    main()
