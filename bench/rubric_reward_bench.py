"""Rubric reward accuracy on a realistic simulated project (tests/rewardtrain/rubric_fixture.py, REALISTIC):
hand-set weights, fitted criterion weights, the reward model alone and the combination, cross-validated by
item with 95% item-bootstrap intervals. Everything is written in one transaction and rolled back.

    python bench/rubric_reward_bench.py [--items 400] [--per-item 3] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.db import transaction

from projects.models import Project
from rewardtrain.rubric_reward import fit_rubric_reward
from tests.rewardtrain.rubric_fixture import REALISTIC, build


class Rollback(Exception):
    pass


def run(items: int, per_item: int, seed: int) -> None:
    try:
        with transaction.atomic():
            project = Project.objects.create(name=f"bench {seed}", slug=f"rubric-bench-{seed}-{time.time_ns()}")
            t0 = time.perf_counter()
            built = build(project, n_items=items, per_item=per_item, seed=seed, rubric_name=f"bench {time.time_ns()}")
            t1 = time.perf_counter()
            fit = fit_rubric_reward(project=project, version=built.version, snapshot=built.snapshot, model=built.model)
            t2 = time.perf_counter()
            r = fit.results
            print(f"\nseed {seed}: {r['pairs']} pairs on {r['items']} items ({r['counts']}), {len(r['folds'])} folds;"
                  f" built in {t1 - t0:.1f} s, fitted in {t2 - t1:.1f} s")
            for a in r["accuracy"].values():
                print(f"  {a['name']:<34} {a['accuracy']:.3f}  [{a['ci'][0]:.3f}, {a['ci'][1]:.3f}]  ties {a['ties']}")
            for name, d in r["differences"].items():
                print(f"  difference {name:<23} {d['difference']:+.3f}  [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
            truth = {s.key: s.true_weight for s in REALISTIC}
            hand = {c.key: c.weight for c in built.version.criteria.all()}
            print(f"  {'criterion':<10} {'true':>6} {'hand':>6} {'alone':>22} {'with model':>22}")
            alone = {w["key"]: w for w in r["weights"]}
            for w in r["combined_weights"]:
                a = alone.get(w["key"])
                ci = w["ci"] or [float("nan")] * 2
                print(
                    f"  {w['key']:<10} {truth.get(w['key'], float('nan')):>6.2f} {hand.get(w['key'], float('nan')):>6.1f}"
                    + (f" {a['weight']:>7.2f} [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}]" if a else " " * 23)
                    + f" {w['weight']:>7.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
                )
            raise Rollback
    except Rollback:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--per-item", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    for seed in args.seeds:
        run(args.items, args.per_item, seed)


if __name__ == "__main__":
    main()
