"""Export throughput and memory on PostgreSQL: raw (every judgment revision) and the aggregated trl file.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_export python bench/export_bench.py 250000 1000000

For each size (judgments; three per comparison, one revision each) a fresh child process migrates, generates
the rows with bulk SQL, snapshots, exports raw JSONL and trl JSONL to a temporary folder, prints rows/s and
memory (RSS before the export and its peak during it, sampled every 10 ms), then deletes its rows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ANNOTATORS = 20
PER_COMPARISON = 3


class PeakRss:
    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def generate(project_id: int, judgments: int) -> None:
    from django.db import connection

    comparisons = judgments // PER_COMPARISON
    with connection.cursor() as cur:
        cur.execute(
            """INSERT INTO annotate_item (project_id, prompt, prompt_key, source, metadata, criteria, created_at)
            SELECT %s, jsonb_build_array(jsonb_build_object('role', 'user', 'content',
                   'Prompt number ' || g || ': explain something in a few sentences, please.')),
                   md5('p' || g), 'bench', '{}', '[]', now()
            FROM generate_series(1, %s) g""",
            [project_id, comparisons],
        )
        for side in ("a", "b"):
            cur.execute(
                """INSERT INTO annotate_response (item_id, text, text_key, model_name, metadata)
                SELECT i.id, 'Response ' || %s || ' to item ' || i.id || '.' || repeat(' Some words of an answer.', 12),
                       md5(%s || i.id), 'model-' || %s, '{}'
                FROM annotate_item i WHERE i.project_id = %s""",
                [side, side, side, project_id],
            )
        cur.execute(
            """INSERT INTO annotate_comparison (project_id, item_id, response_a_id, response_b_id, pair_key, extra_k,
                                               crowd_judgments, random_key, created_at)
            SELECT %s, i.id, ra.id, rb.id, md5('pair' || i.id), 0, %s, random(), now()
            FROM annotate_item i
            JOIN annotate_response ra ON ra.item_id = i.id AND ra.model_name = 'model-a'
            JOIN annotate_response rb ON rb.item_id = i.id AND rb.model_name = 'model-b'
            WHERE i.project_id = %s""",
            [project_id, PER_COMPARISON, project_id],
        )
        cur.execute(
            """INSERT INTO annotate_annotator (project_id, name, kind, imported, flagged, erased, created_at)
            SELECT %s, 'annotator-' || g, 'crowd', false, false, false, now() FROM generate_series(1, %s) g""",
            [project_id, ANNOTATORS],
        )
        cur.execute(
            """WITH ann AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM annotate_annotator
                            WHERE project_id = %s),
                    -- Two of the three votes lean the same way, so every comparison has a consensus and the
                    -- raw export holds every judgment; the third vote is anything.
                    votes AS (SELECT c.id AS cid, k,
                                     CASE WHEN k < 2
                                          THEN (CASE WHEN c.id %% 2 = 0 THEN -1 ELSE 1 END) * (1 + floor(random() * 3)::int)
                                          ELSE floor(random() * 7)::int - 3 END AS pref
                              FROM annotate_comparison c CROSS JOIN generate_series(0, %s) k
                              WHERE c.project_id = %s)
            INSERT INTO annotate_judgment (project_id, comparison_id, annotator_id, is_source, imported, is_gold,
                revision_count, created_at, updated_at, preference, choice, helpfulness, harmlessness, a_safe, b_safe,
                a_harm_categories, b_harm_categories, justification, time_spent_ms, shown_left)
            SELECT %s, v.cid, ann.id, false, false, false, 1, now(), now(), v.pref,
                   CASE WHEN v.pref < 0 THEN 'a' WHEN v.pref > 0 THEN 'b' ELSE 'tie' END,
                   CASE WHEN v.pref <= 0 THEN 'a' ELSE 'b' END, 'a', true, v.k <> 0,
                   '[]', CASE WHEN v.k = 0 THEN '["privacy_violation"]' ELSE '[]' END::jsonb,
                   'Because response ' || CASE WHEN v.pref < 0 THEN 'A' ELSE 'B' END || ' is clearer.',
                   15000 + v.k * 1000, 'a'
            FROM votes v JOIN ann ON ann.n = (v.cid + v.k) %% %s""",
            [project_id, PER_COMPARISON - 1, project_id, project_id, ANNOTATORS],
        )
        cur.execute(
            """INSERT INTO annotate_judgmentrevision (judgment_id, number, created_at, preference, choice, helpfulness,
                harmlessness, a_safe, b_safe, a_harm_categories, b_harm_categories, justification, time_spent_ms,
                shown_left, submission_id)
            SELECT id, 1, created_at, preference, choice, helpfulness, harmlessness, a_safe, b_safe,
                   a_harm_categories, b_harm_categories, justification, time_spent_ms, shown_left, NULL
            FROM annotate_judgment WHERE project_id = %s""",
            [project_id],
        )
        cur.execute("ANALYZE")


def cleanup(project_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        for sql in (
            "DELETE FROM annotate_snapshotpair WHERE snapshot_id IN (SELECT id FROM annotate_datasetsnapshot WHERE project_id = %s)",
            "DELETE FROM annotate_datasetsnapshot WHERE project_id = %s",
            "DELETE FROM annotate_judgmentrevision WHERE judgment_id IN (SELECT id FROM annotate_judgment WHERE project_id = %s)",
            "DELETE FROM annotate_judgment WHERE project_id = %s",
            "DELETE FROM annotate_comparison WHERE project_id = %s",
            "DELETE FROM annotate_response WHERE item_id IN (SELECT id FROM annotate_item WHERE project_id = %s)",
            "DELETE FROM annotate_item WHERE project_id = %s",
            "DELETE FROM annotate_annotator WHERE project_id = %s",
            # Audit rows are append-only (the database refuses deletes); detach them as a project delete does.
            "UPDATE annotate_auditevent SET project_id = NULL WHERE project_id = %s",
            "DELETE FROM annotate_project WHERE id = %s",
        ):
            cur.execute(sql, [project_id])


def one(judgments: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from annotate.exporters import export_snapshot
    from annotate.models import Project
    from annotate.snapshots import create_snapshot

    call_command("migrate", verbosity=0)
    slug = f"export-bench-{judgments}-{os.getpid()}"
    project = Project.objects.create(name=slug, slug=slug)
    try:
        t = time.perf_counter()
        generate(project.pk, judgments)
        print(f"[{judgments}] generated in {time.perf_counter() - t:.1f}s", flush=True)
        print(f"[{judgments}] load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        t = time.perf_counter()
        cpu = time.process_time()
        with PeakRss() as mem:
            snapshot = create_snapshot(project=project)
        dt = time.perf_counter() - t
        cpu = time.process_time() - cpu
        print(
            f"[{judgments}] snapshot: {snapshot.pair_count} pairs of {snapshot.counts['comparisons']} comparisons "
            f"in {dt:.1f}s ({snapshot.counts['comparisons'] / dt:,.0f} comparisons/s; this process's CPU "
            f"{cpu:.1f}s = {snapshot.counts['comparisons'] / cpu:,.0f} per CPU-second); "
            f"RSS {mem.start / 2**20:.0f} MiB -> peak {mem.peak / 2**20:.0f} MiB",
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in ("raw", "trl"):
                path = Path(tmp) / f"{fmt}.jsonl"
                t = time.perf_counter()
                cpu = time.process_time()
                with PeakRss() as mem:
                    result = export_snapshot(snapshot, path, fmt=fmt, margin=fmt == "trl")
                dt = time.perf_counter() - t
                cpu = time.process_time() - cpu
                print(
                    f"[{judgments}] export {fmt}: {result.rows:,} rows in {dt:.1f}s = {result.rows / dt:,.0f} rows/s "
                    f"(this process's CPU {cpu:.1f}s = {result.rows / cpu:,.0f} rows per CPU-second); "
                    f"{path.stat().st_size / 2**20:.0f} MiB written; RSS {mem.start / 2**20:.0f} MiB -> peak "
                    f"{mem.peak / 2**20:.0f} MiB (+{(mem.peak - mem.start) / 2**20:.0f} MiB)",
                    flush=True,
                )
    finally:
        cleanup(project.pk)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[250_000, 1_000_000], help="judgments per run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one)
        return
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL database (the bench writes and then deletes its rows there)."
        )
    for size in args.sizes:
        subprocess.run([sys.executable, __file__, "--one", str(size)], check=True)


if __name__ == "__main__":
    main()
