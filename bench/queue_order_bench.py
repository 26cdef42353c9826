"""What a claim costs in each queue order (annotate/assignment.md): `claim_next` for fresh annotators on a project
of `--comparisons` comparisons, every response scored by an active reward model and a third of the comparisons
with crowd votes. Prints the median and p90 milliseconds per claim (server-side Python + PostgreSQL, one
process, no HTTP) for default, uncertainty and disagreement. Run on an empty, migrated database of your own:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arb_bench python bench/queue_order_bench.py --comparisons 20000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comparisons", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=40)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.utils import timezone

    from annotate.assignment import claim_next
    from annotate.models import Comparison, Item, Judgment, Response
    from curation.models import DatasetSnapshot
    from projects.models import Annotator, Membership, Project
    from rewardtrain.models import ModelVersion, Score, TrainingRun

    rnd = random.Random(0)
    slug = f"qbench-{int(time.time())}"
    project = Project.objects.create(name=slug, slug=slug, overlap_k=3)
    n = args.comparisons
    items = Item.objects.bulk_create(
        Item(project=project, prompt=[{"role": "user", "content": f"p{i}"}], prompt_key=f"{i:064d}") for i in range(n)
    )
    responses = Response.objects.bulk_create(
        Response(item=item, text=f"{side}{i}", text_key=f"{side}{i:063d}")
        for i, item in enumerate(items)
        for side in "ab"
    )
    comparisons = Comparison.objects.bulk_create(
        Comparison(
            project=project,
            item=item,
            response_a=responses[2 * i],
            response_b=responses[2 * i + 1],
            pair_key=f"{i:064d}",
            random_key=rnd.random(),
        )
        for i, item in enumerate(items)
    )
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="tiny")
    model = ModelVersion.objects.create(run=run, project=project, path="/m", snapshot_hash="0" * 64, is_active=True)
    Score.objects.bulk_create(Score(model_version=model, response=r, value=rnd.gauss(0, 1)) for r in responses)
    voters = Annotator.objects.bulk_create(Annotator(project=project, name=f"v{i}") for i in range(2))
    now = timezone.now()
    Judgment.objects.bulk_create(
        Judgment(project=project, comparison=c, annotator=v, choice=rnd.choice("ab"), created_at=now, updated_at=now)
        for c in comparisons[: n // 3]
        for v in voters
    )
    users = User.objects.bulk_create(User(username=f"{slug}-{i}") for i in range(3 * args.claims))
    Membership.objects.bulk_create(Membership(user=u, project=project, role="annotator") for u in users)
    from django.db import connection

    with connection.cursor() as cur:  # fresh statistics for the planner, as after any bulk import
        cur.execute("ANALYZE")
    print(f"{n} comparisons, {len(responses)} scores, {2 * (n // 3)} crowd votes; {args.claims} claims per order")
    for k, order in enumerate(("default", "uncertainty", "disagreement")):
        project.queue_order = order
        project.save(update_fields=["queue_order"])
        times = []
        for user in users[k * args.claims : (k + 1) * args.claims]:
            started = time.perf_counter()
            assignment = claim_next(project=project, user=user)
            times.append((time.perf_counter() - started) * 1000)
            assert assignment is not None
        times.sort()
        print(f"{order:>12}: median {statistics.median(times):7.2f} ms, p90 {times[int(0.9 * len(times))]:7.2f} ms")


if __name__ == "__main__":
    main()
