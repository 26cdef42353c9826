"""Export throughput and memory on PostgreSQL: raw (every judgment revision) and the aggregated trl file.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/arbiter_export python bench/export_bench.py 250000 1000000

For each size (judgments; three per comparison, one revision each) a child process migrates, generates the
rows with bulk SQL and snapshots them (timed). Then every export runs `--runs` times, each in a fresh
process, so the memory figures are the export's own: the process's high-water mark (ru_maxrss) once Django
and the exporter are loaded and a query has opened the connection pool, then after the export (raw JSONL
and trl JSONL with margins, to a temporary folder, dataset card included). Each run prints rows/s, the
CPU seconds of the process and of its PostgreSQL backends (every connection this process opened, found by
its application_name, read from /proc: NaN when the server is on another host), the seconds each spent
runnable but waiting for a CPU (schedstat: what a busy machine adds to the wall time), how long the
dataset card's figures took (read beside the rows, on a thread of their own), and the load average; then
the medians. The rows are deleted at the end. `--formats trl` runs one of the two; `--against DIR` also
exports with another checkout's code (e.g. a `git worktree` of main), alternating with this tree's run by run,
for before/after figures on the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
APP = f"export-bench-{os.getpid()}"

ANNOTATORS = 20
PER_COMPARISON = 3


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
    vacuum(analyze=True)


# The tables the bench fills and empties. This server runs with autovacuum off, so the bench vacuums them
# itself: after generating (hint bits set, statistics fresh, as in a database that has settled) and after
# deleting (else every run leaves its rows behind as dead tuples that the next run's scans read again:
# measured, PostgreSQL's CPU per export grew run after run).
TABLES = (
    "annotate_item",
    "annotate_response",
    "annotate_comparison",
    "annotate_annotator",
    "annotate_judgment",
    "annotate_judgmentrevision",
    "annotate_snapshotpair",
    "annotate_datasetsnapshot",
)


def vacuum(*, analyze: bool) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f"VACUUM {'(ANALYZE) ' if analyze else ''}{', '.join(TABLES)}")


def cleanup(project_id: int) -> None:
    from django.db import connection, transaction

    from curation.triggers import PURGE_SQL

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(PURGE_SQL)  # frozen snapshots refuse DELETE otherwise (curation/triggers.py)
        for sql in (
            "DELETE FROM annotate_snapshotpair WHERE snapshot_id IN (SELECT id FROM annotate_datasetsnapshot WHERE project_id = %s)",
            "DELETE FROM curation_snapshotcontested WHERE snapshot_id IN (SELECT id FROM annotate_datasetsnapshot WHERE project_id = %s)",
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


def _setup() -> None:
    """Django, with this process's connections named so that their backends can be found."""
    url = os.environ["DATABASE_URL"]
    os.environ["DATABASE_URL"] = url + ("&" if "?" in url else "?") + f"application_name={APP}"
    import django

    django.setup()


def _backend_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL backend of this process (NaN when /proc cannot tell)."""
    return {pid: cpu for pid, (cpu, _) in _backends().items()}


def _backends() -> dict[int, tuple[float, float]]:
    """(CPU seconds, seconds spent waiting for a CPU) of every PostgreSQL backend of this process, from
    /proc (NaN when it cannot tell: another host, or no schedstat)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [APP])
        pids = [row[0] for row in cur.fetchall()]
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, PermissionError, IndexError):
            cpu = float("nan")
        out[pid] = (cpu, _run_queue_wait(Path(f"/proc/{pid}/schedstat")))
    return out


def _run_queue_wait(*paths: Path) -> float:
    """Seconds that these tasks spent runnable but waiting for a CPU (the second field of schedstat)."""
    try:
        return sum(int(p.read_text().split()[1]) for p in paths) / 1e9
    except (FileNotFoundError, PermissionError, IndexError, ValueError):
        return float("nan")


def _own_wait() -> float:
    """Seconds that this process's threads spent waiting for a CPU."""
    return _run_queue_wait(*Path("/proc/self/task").glob("*/schedstat"))


def _spent(before: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in _backend_cpu().items())


def _waited(before: dict[int, tuple[float, float]]) -> float:
    return sum(wait - before.get(pid, (0.0, 0.0))[1] for pid, (_, wait) in _backends().items())


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(judgments: int) -> None:
    """Migrate, generate, snapshot (timed); prints the ids as the last line, JSON."""
    _setup()
    from django.core.management import call_command

    from curation.snapshots import create_snapshot
    from projects.models import Project

    call_command("migrate", verbosity=0)
    slug = f"export-bench-{judgments}-{os.getpid()}"
    project = Project.objects.create(name=slug, slug=slug)
    t = time.perf_counter()
    generate(project.pk, judgments)
    print(f"[{judgments}] generated in {time.perf_counter() - t:.1f}s", flush=True)
    load = os.getloadavg()[0]
    backends = _backend_cpu()
    t, cpu = time.perf_counter(), time.process_time()
    snapshot = create_snapshot(project=project)
    wall, cpu, server = time.perf_counter() - t, time.process_time() - cpu, _spent(backends)
    n = snapshot.counts["comparisons"]
    print(
        f"[{judgments}] snapshot: {snapshot.pair_count:,} pairs of {n:,} comparisons in {wall:.1f}s = "
        f"{n / wall:,.0f} comparisons/s; CPU: process {cpu:.1f}s, PostgreSQL {server:.1f}s; "
        f"load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    print(json.dumps({"project": project.pk, "snapshot": snapshot.pk}))


def export_once(fmt: str, snapshot_id: int) -> None:
    """One export in this fresh process; prints one line and, last, its figures as JSON."""
    _setup()
    from curation import exporters
    from curation.models import DatasetSnapshot

    snapshot = DatasetSnapshot.objects.select_related("project").get(pk=snapshot_id)
    card = {"s": 0.0, "cpu": 0.0}
    card_figures = exporters.card_figures

    def timed_figures(*args, **kwargs):
        # Runs in the thread that reads the card's figures beside the rows (PostgreSQL, no transaction).
        t, cpu = time.perf_counter(), time.thread_time()
        try:
            return card_figures(*args, **kwargs)
        finally:
            card["s"] += time.perf_counter() - t
            card["cpu"] += time.thread_time() - cpu

    exporters.card_figures = timed_figures
    rss = _maxrss_mib()
    load = os.getloadavg()[0]
    backends = _backends()
    own_wait = _own_wait()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{fmt}.jsonl"
        t, cpu = time.perf_counter(), time.process_time()
        result = exporters.export_snapshot(snapshot, path, fmt=fmt, margin=fmt == "trl")
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        # The stream connections are back in the pool, their backends still there to be read.
        server, server_wait = _spent({p: c for p, (c, _) in backends.items()}), _waited(backends)
        own_wait = _own_wait() - own_wait
        size = path.stat().st_size
    peak = _maxrss_mib()
    figures = {
        "rows": result.rows,
        "wall": wall,
        "rows_per_s": result.rows / wall,
        "cpu": cpu,
        "server_cpu": server,
        "card_s": card["s"],
        "card_cpu": card["cpu"],
        "wait": own_wait,
        "server_wait": server_wait,
        "rss_before": rss,
        "rss_peak": peak,
        "load": load,
    }
    print(
        f"  {fmt}: {result.rows:,} rows in {wall:.1f}s = {result.rows / wall:,.0f} rows/s "
        f"(dataset card figures {card['s']:.1f}s, beside the rows); {size / 2**20:,.0f} MiB written; "
        f"CPU: process {cpu:.1f}s, PostgreSQL {server:.1f}s; waiting for a CPU: process {own_wait:.1f}s, "
        f"PostgreSQL {server_wait:.1f}s; peak RSS {rss:.0f} -> {peak:.0f} MiB (+{peak - rss:.0f}); "
        f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(json.dumps(figures))


def cleanup_project(project_id: int) -> None:
    _setup()
    cleanup(project_id)
    vacuum(analyze=False)


def _child(*args: str, bench: str = __file__, label: str = "") -> dict:
    # Run in the bench's checkout: Celery's loader puts the working directory first on sys.path, so another
    # checkout's bench run from here would import this tree's code.
    out = subprocess.run(
        [sys.executable, bench, *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(bench).resolve().parent.parent,
    ).stdout.splitlines()
    for line in out[:-1]:
        print(label + line, flush=True)
    return json.loads(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[250_000, 1_000_000], help="judgments per run")
    parser.add_argument("--runs", type=int, default=3, help="exports of each format per size (medians)")
    parser.add_argument(
        "--formats", nargs="+", choices=("raw", "trl"), default=["raw", "trl"], help="the exports to run"
    )
    parser.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="also export with the code of this checkout (its bench/export_bench.py), each run right after or "
        "before this tree's, the order alternating: before/after figures on the same rows and machine",
    )
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--export", nargs=2, metavar=("FORMAT", "SNAPSHOT"), help=argparse.SUPPRESS)
    parser.add_argument("--cleanup", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        return prepare(args.prepare)
    if args.export:
        return export_once(args.export[0], int(args.export[1]))
    if args.cleanup:
        return cleanup_project(args.cleanup)
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL database (the bench writes and then deletes its rows there)."
        )
    for size in args.sizes:
        ids = _child("--prepare", str(size))
        try:
            for fmt in args.formats:
                codes = {"": __file__}
                if args.against:
                    codes = {
                        "this tree: ": __file__,
                        f"{args.against}: ": f"{args.against}/bench/export_bench.py",
                    }
                runs: dict[str, list[dict]] = {label: [] for label in codes}
                for i in range(args.runs):
                    for label in list(codes)[:: 1 if i % 2 == 0 else -1]:
                        runs[label].append(
                            _child("--export", fmt, str(ids["snapshot"]), bench=codes[label], label=label)
                        )
                for label, these in runs.items():
                    _summary(size, fmt, label, these)
        finally:
            subprocess.run([sys.executable, __file__, "--cleanup", str(ids["project"])], check=True)


def _summary(size: int, fmt: str, label: str, runs: list[dict]) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(
        f"[{size}] {label}export {fmt}, median of {len(runs)}: {median('rows_per_s'):,.0f} rows/s "
        f"({median('wall'):.1f}s); CPU: process {median('cpu'):.1f}s, PostgreSQL "
        f"{median('server_cpu'):.1f}s; waiting for a CPU: process {median('wait'):.1f}s, "
        f"PostgreSQL {median('server_wait'):.1f}s; peak RSS "
        f"+{median('rss_peak') - median('rss_before'):.0f} MiB over {median('rss_before'):.0f}; "
        f"load average {median('load'):.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
