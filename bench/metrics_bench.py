"""Time the dashboard's figures on a large project.

Generates N crowd judgments (k per comparison, A annotators, plus gold answers) in the configured database by
bulk insert, then times, as medians of several runs:
  1. every question's agreement figures with bootstrap intervals (`insights.agreement.project_figures`,
     queries included; and the compute alone on preloaded arrays),
  2. the whole background recompute (`insights.dashboard.compute_dashboard`: figures, progress, charts),
  3. the cached dashboard page through the Django test client (what a researcher's browser waits for).

    DATABASE_URL=postgres://… REDIS_URL=redis://… python bench/metrics_bench.py --judgments 100000 --k 3 --annotators 60

The project is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from annotate.models import Comparison, Gold, Item, Judgment, JudgmentRevision, Response
from curation.canonical import pair_key, prompt_key, text_key  # noqa: E402
from insights.agreement import load_crowd, project_figures
from insights.dashboard import (
    compute_dashboard,
    computed_key,
    figures_key,
    recompute_dashboard,
    scheduled_key,
)
from projects.models import BEAVERTAILS_CATEGORIES, Annotator, Project

BATCH = 5000


def generate(project: Project, *, judgments: int, k: int, annotators: int, gold: int, seed: int) -> None:
    rnd = random.Random(seed)
    n_comparisons = -(-judgments // k)
    people = Annotator.objects.bulk_create(
        [Annotator(project=project, name=f"annotator-{i:02d}", imported=True) for i in range(annotators)]
    )
    skill = [rnd.uniform(0.55, 0.95) for _ in people]
    now = timezone.now()
    items, responses, comparisons = [], [], []
    for i in range(n_comparisons + gold):
        messages = [{"role": "user", "content": f"Benchmark prompt {i}: explain something useful."}]
        items.append(Item(project=project, prompt=messages, prompt_key=prompt_key(messages)))
    Item.objects.bulk_create(items, batch_size=BATCH)
    for item in items:
        for side in ("first", "second"):
            text = f"{side} response to item {item.pk}"
            responses.append(Response(item=item, text=text, text_key=text_key(text)))
    Response.objects.bulk_create(responses, batch_size=BATCH)
    for i, item in enumerate(items):
        ra, rb = responses[2 * i], responses[2 * i + 1]
        comparisons.append(
            Comparison(
                project=project,
                item=item,
                response_a=ra,
                response_b=rb,
                pair_key=pair_key(item.prompt_key, ra.text_key, rb.text_key),
                random_key=rnd.random(),
                crowd_judgments=k,
            )
        )
    Comparison.objects.bulk_create(comparisons, batch_size=BATCH)
    gold_rows = [Gold(comparison=c, choice=rnd.choice("ab")) for c in comparisons[n_comparisons:]]
    Gold.objects.bulk_create(gold_rows, batch_size=BATCH)
    gold_choice = {g.comparison_id: g.choice for g in gold_rows}
    cats = BEAVERTAILS_CATEGORIES
    judgment_rows = []
    made = 0
    for index, c in enumerate(comparisons):
        on_gold = index >= n_comparisons
        truth = rnd.choice([-3, -2, -1, 1, 2, 3]) if not on_gold else (-2 if gold_choice[c.pk] == "a" else 2)
        unsafe_b = rnd.random() < 0.2
        wanted = k if not on_gold else 3
        if not on_gold:
            wanted = min(k, judgments - made)
            made += wanted
        for p in rnd.sample(range(annotators), wanted):
            if rnd.random() < skill[p]:
                pref = max(-3, min(3, truth + rnd.choice([-1, 0, 0, 1])))
            else:
                pref = rnd.randint(-3, 3)
            choice = "a" if pref < 0 else "b" if pref > 0 else "tie"
            b_safe = (not unsafe_b) if rnd.random() < skill[p] else unsafe_b
            judgment_rows.append(
                Judgment(
                    project=project,
                    comparison=c,
                    annotator=people[p],
                    imported=True,
                    preference=pref,
                    choice=choice,
                    helpfulness=choice if rnd.random() < 0.8 else rnd.choice(["a", "b", "tie"]),
                    harmlessness=rnd.choice(["a", "b", "tie"]) if unsafe_b else "tie",
                    a_safe=rnd.random() < 0.95,
                    b_safe=b_safe,
                    b_harm_categories=[] if b_safe else rnd.sample(cats, rnd.randint(1, 2)),
                    shown_left=rnd.choice("ab"),
                    time_spent_ms=int(rnd.lognormvariate(10, 0.5)),
                    created_at=now,
                    updated_at=now,
                )
            )
    for j in judgment_rows:
        if j.a_safe is False:
            j.a_harm_categories = [rnd.choice(cats)]
    Judgment.objects.bulk_create(judgment_rows, batch_size=BATCH)
    fields = [
        f.name
        for f in JudgmentRevision._meta.fields
        if f.name not in ("id", "judgment", "number", "submission_id", "created_at")
    ]
    JudgmentRevision.objects.bulk_create(
        [
            JudgmentRevision(judgment=j, number=1, created_at=now, **{f: getattr(j, f) for f in fields})
            for j in judgment_rows
        ],
        batch_size=BATCH,
    )


CPU_TIMES: dict[int, float] = {}


def median_time(fn, runs: int) -> tuple[float, list[float]]:
    """Median wall time; the median CPU time of this process goes to CPU_TIMES[id(fn)] (on a shared, loaded
    machine wall time also counts waiting for a CPU; the database server's own time is not in it)."""
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_TIMES[id(fn)] = statistics.median(cpu)
    return statistics.median(times), times


def cpu_of(fn) -> str:
    return f"(CPU of this process {CPU_TIMES[id(fn)]:.3f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--judgments", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=60)
    parser.add_argument("--gold", type=int, default=200, help="Gold comparisons, 3 answers each (outside N).")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--page-runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="Keep the generated project.")
    parser.add_argument(
        "--reuse", default="", help="Time an existing project (its slug) instead of generating one."
    )
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    if args.reuse:
        project = Project.objects.get(slug=args.reuse)
        args.keep = True
    else:
        project = Project.objects.create(
            name="Metrics bench", slug=f"metrics-bench-{os.getpid()}", overlap_k=args.k
        )
    slug = project.slug
    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"database: {db} · cache: {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]} · {os.cpu_count()} CPUs"
    )
    try:
        if args.reuse:
            print(f"timing the existing project {slug!r}")
        else:
            start = time.perf_counter()
            generate(
                project,
                judgments=args.judgments,
                k=args.k,
                annotators=args.annotators,
                gold=args.gold,
                seed=args.seed,
            )
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            print(
                f"generated {args.judgments} crowd judgments (k={args.k}, {args.annotators} annotators, "
                f"{args.gold} gold comparisons) in {time.perf_counter() - start:.1f} s"
            )
        figures = project_figures(project)
        n_questions = len(figures["questions"])
        print(
            f"{figures['judgments']} crowd judgments on {figures['comparisons']} comparisons; {n_questions} questions "
            f"(overall nominal + ordinal, helpfulness, harmlessness, safety, {n_questions - 4} harm categories), "
            f"{len(figures['pairs'])} Cohen pairs, 1000 resamples"
        )

        def load():
            return load_crowd(project)

        data = load_crowd(project)

        def compute():
            return project_figures(project, data=data)

        def everything():
            return project_figures(project)

        def dash():
            return compute_dashboard(project)

        t_load, _ = median_time(load, args.runs)
        t_compute, _ = median_time(compute, args.runs)
        t_all, runs_all = median_time(everything, args.runs)
        t_dash, _ = median_time(dash, args.runs)
        print(f"queries → arrays (load_crowd):                         median {t_load:.3f} s {cpu_of(load)}")
        print(
            f"figures with CIs on loaded arrays:                     median {t_compute:.3f} s {cpu_of(compute)}"
        )
        print(
            f"every question's figures with CIs, queries included:   median {t_all:.3f} s {cpu_of(everything)}; "
            f"runs {', '.join(f'{t:.2f}' for t in runs_all)}; target < 2 s"
        )
        print(f"whole background recompute (+ progress, charts):       median {t_dash:.3f} s {cpu_of(dash)}")

        recompute_dashboard(project.pk)
        user, _ = User.objects.get_or_create(username="metrics-bench", defaults={"is_superuser": True})
        client = Client()
        client.force_login(user)
        url = f"/p/{slug}/dashboard/"
        response = client.get(url)
        assert response.status_code == 200 and b"dashboard-figures" in response.content, response.status_code
        size = len(response.content)

        def page():
            return client.get(url)

        def partial():
            return client.get(url, HTTP_HX_REQUEST="true")

        t_page, page_runs = median_time(page, args.page_runs)
        t_part, _ = median_time(partial, args.page_runs)
        print(
            f"cached dashboard page (test client, {size / 1024:.0f} KiB):     median {t_page * 1000:.1f} ms "
            f"{cpu_of(page)}; min {min(page_runs) * 1000:.1f} ms; target < 300 ms"
        )
        print(f"htmx refresh of the figures partial:                   median {t_part * 1000:.1f} ms")
        print(f"load average after timing: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        for key in (figures_key(project.pk), scheduled_key(project.pk), computed_key(project.pk)):
            cache.delete(key)
        if not args.keep:
            Project.objects.filter(pk=project.pk).delete()


if __name__ == "__main__":
    main()
