"""Import throughput into PostgreSQL: a generated `generic` file (two responses a line), or a `raw` file of votes.

    DATABASE_URL=postgres://… python bench/import_bench.py [--format generic] [--sizes 50000 200000] [--runs 3]
    DATABASE_URL=postgres://… python bench/import_bench.py --format raw [--sizes 100000] [--runs 3]

`raw`: a size is a number of judgments, three annotators' votes on each comparison (a third as many comparisons),
30 % of the rows naming the pair in the other order, the rows shuffled.

For each size: writes the file once, imports it `--runs` times, each into a fresh project and in a fresh child
process, and prints the median comparisons/s (`raw`: judgments/s) and the child's peak RSS (VmHWM: the
process's high-water mark, taken before and after the import, so the import's own growth shows; unlike
ru_maxrss it does not carry over the parent's, which held the generated `raw` rows). A run that takes
longer than `--timeout` seconds is stopped and reported as not finished. For `generic` it also times a bare COPY
of the same rows (prompt, response a, response b as text, parsed from the same file) into a scratch table, for
comparison. It also prints the CPU seconds of the import process and of its PostgreSQL backend (when the
server is local), which say more than wall time on a shared machine, the load average, and a CPU probe (a
fixed Python loop timed between runs) that shows how fast the machine ran meanwhile.
Bench projects are removed afterwards. `IMPORT_BENCH_ROOT=<a checkout>` runs the imports of that checkout's
code instead of this one's (to compare two versions with the same files).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("IMPORT_BENCH_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

WORDS = (  # noqa: SIM905 - a readable word list
    "the of and to in is you that it he was for on are as with his they at be this have from or one had by word "
    "but not what all were we when your can said there use an each which she do how their if will up other about "
    "out many then them these so some her would make like him into time has look two more write go see number no "
    "way could people my than first water been call who oil its now find long down day did get come made may part "
    "model reward answer question helpful harmless safe please explain because however example code function"
).split()


def _lognormal_len(rng: random.Random, median: int, cap: int) -> int:
    return max(1, min(cap, int(rng.lognormvariate(0, 0.9) * median)))


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Unique prompts (median ~250 characters) and two distinct responses (median ~130 and ~150 characters,
    long-tailed), about the shape of the HH data."""
    import orjson

    rng = random.Random(seed)
    pool = " ".join(rng.choice(WORDS) for _ in range(400_000))
    size = len(pool)

    def text(median: int, cap: int) -> str:
        length = _lognormal_len(rng, median, cap)
        start = rng.randrange(0, size - length)
        return pool[start : start + length]

    with open(path, "wb") as fh:
        for i in range(n):
            line = {
                "prompt": f"Question {i}: {text(250, 4000)}",
                "responses": [
                    f"{text(130, 3000)} (a{i})",
                    {"text": f"{text(150, 3000)} (b{i})", "model": "m-b"},
                ],
            }
            fh.write(orjson.dumps(line) + b"\n")


def generate_raw(path: Path, n: int, seed: int = 0, annotators: int = 50, flipped: float = 0.3) -> None:
    """`n` votes, three on each comparison (unique prompts, two responses as in `generate`) by three of
    `annotators` names; a share `flipped` of the rows name the pair B first (their answers turned to match),
    and the rows are shuffled, as a vote log exported from another tool might be."""
    import orjson

    rng = random.Random(seed)
    pool = " ".join(rng.choice(WORDS) for _ in range(400_000))
    size = len(pool)

    def text(median: int, cap: int) -> str:
        length = _lognormal_len(rng, median, cap)
        start = rng.randrange(0, size - length)
        return pool[start : start + length]

    names = [f"annotator-{i:03d}" for i in range(annotators)]
    rows = []
    for i in range((n + 2) // 3):
        prompt = f"Question {i}: {text(250, 4000)}"
        a, b = f"{text(130, 3000)} (a{i})", f"{text(150, 3000)} (b{i})"
        for name in rng.sample(names, 3):
            pref = rng.choice((-3, -2, -1, 0, 1, 2, 3))
            row = {
                "prompt": prompt,
                "response_a": a,
                "response_b": {"text": b, "model": "m-b"},
                "annotator": name,
                "preference": pref,
                "helpfulness": rng.choice(("a", "b", "tie")),
                "time_spent_ms": rng.randrange(2_000, 90_000),
                "created_at": f"2024-05-{1 + i % 28:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00+00:00",
            }
            if rng.random() < flipped:
                row["response_a"], row["response_b"] = row["response_b"], row["response_a"]
                row["preference"] = -pref
                row["helpfulness"] = {"a": "b", "b": "a", "tie": "tie"}[row["helpfulness"]]
            rows.append(row)
    rows = rows[:n]
    rng.shuffle(rows)
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(orjson.dumps(row) + b"\n")


def probe_ms() -> float:
    """A fixed pure-Python loop, best of three, in ms: how fast this (shared, virtual) machine runs right now.
    On the development machine it swings 2-3x from minute to minute; it is printed beside every figure."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid: int) -> float:
    """CPU seconds of a local PostgreSQL backend (NaN when the server is on another host)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_mib() -> float:
    """This process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(path: str, slug: str, fmt: str) -> None:
    """Runs in a fresh process: one import, timed, with the RSS high-water mark before and after."""
    import django

    django.setup()
    from django.db import connection

    with connection.cursor() as cur:  # for a stopped run's clean-up (run_child)
        cur.execute("SELECT set_config('application_name', %s, false)", [slug])

    from curation.importers import import_file
    from projects.models import Project

    project = Project.objects.create(name=slug, slug=slug)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]
    before = _peak_mib()
    client0, server0 = _cpu_self(), _cpu_of(backend)
    t0 = time.perf_counter()
    report = import_file(path, project=project, fmt=fmt)
    seconds = time.perf_counter() - t0
    client, server = _cpu_self() - client0, _cpu_of(backend) - server0
    after = _peak_mib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "comparisons": report.comparisons_created,
                "judgments": report.judgments_created,
                "rss_before_mib": before,
                "rss_peak_mib": after,
                "project_id": project.pk,
                "client_cpu": client,
                "server_cpu": server,
            }
        )
    )


def bare_copy(path: Path) -> tuple[float, int]:
    """Seconds to parse the file and COPY (prompt, a, b) rows into an unlogged scratch table."""
    import django

    django.setup()
    import orjson
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_scratch")
        cur.execute("CREATE UNLOGGED TABLE bench_scratch (prompt text, response_a text, response_b text)")
    t0 = time.perf_counter()
    n = 0
    scratch = "COPY bench_scratch (prompt, response_a, response_b) FROM STDIN"
    with connection.cursor() as cur, open(path, "rb") as fh, cur.cursor.copy(scratch) as copy:
        for line in fh:
            obj = orjson.loads(line)
            a, b = obj["responses"]
            copy.write_row((obj["prompt"], a, b["text"]))
            n += 1
    seconds = time.perf_counter() - t0
    with connection.cursor() as cur:
        cur.execute("DROP TABLE bench_scratch")
    return seconds, n


def cleanup(project_ids: list[int | None]) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        # Fresh statistics first: the deletes' foreign-key checks plan their look-ups once, and with the
        # statistics of the empty tables a previous clean-up left they would scan a table per deleted row.
        cur.execute("ANALYZE annotate_item, annotate_response, annotate_comparison, annotate_judgment")
        for pid in filter(None, project_ids):
            cur.execute(
                "DELETE FROM annotate_judgmentrevision WHERE judgment_id IN"
                " (SELECT id FROM annotate_judgment WHERE project_id = %s)",
                [pid],
            )
            for table in (
                "annotate_judgment",
                "annotate_comparison",
                "annotate_annotator",
            ):
                cur.execute(f"DELETE FROM {table} WHERE project_id = %s", [pid])  # noqa: S608 - fixed names
            # Audit rows are append-only (the database refuses deletes); detach them as a project delete does.
            cur.execute("UPDATE annotate_auditevent SET project_id = NULL WHERE project_id = %s", [pid])
            cur.execute(
                "DELETE FROM annotate_response WHERE item_id IN (SELECT id FROM annotate_item WHERE project_id = %s)",
                [pid],
            )
            cur.execute("DELETE FROM annotate_item WHERE project_id = %s", [pid])
            cur.execute("DELETE FROM annotate_project WHERE id = %s", [pid])
    # The dead rows would otherwise slow the next runs' index inserts (autovacuum may be off or behind).
    with connection.cursor() as cur:
        for table in ("annotate_item", "annotate_response", "annotate_comparison"):
            cur.execute(f"VACUUM ANALYZE {table}")  # noqa: S608 - fixed names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("generic", "raw"), default="generic")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="lines (raw: judgments); default 50000 200000, raw 100000"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run is stopped")
    parser.add_argument("--child", nargs=3, metavar=("FILE", "SLUG", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    fmt = args.format
    sizes = args.sizes or ([100_000] if fmt == "raw" else [50_000, 200_000])
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    stamp = int(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"{fmt}-{n}.jsonl"
            (generate_raw if fmt == "raw" else generate)(path, n)
            mib = path.stat().st_size / 2**20
            copy_note = ""
            if fmt == "generic":
                copy_s, rows = bare_copy(path)
                copy_note = f"bare COPY of the same rows {rows / copy_s:,.0f} rows/s; "
            results, ids, unfinished = [], [], []
            probes = [probe_ms()]
            for run in range(args.runs):
                res = run_child(path, f"bench-{stamp}-{fmt}-{n}-{run}", fmt, args.timeout)
                ids.append(res["project_id"])
                if "seconds" in res:
                    results.append(res)
                else:
                    unfinished.append(res["stopped_after"])
                probes.append(probe_ms())
            what = "judgments" if fmt == "raw" else "comparisons"
            head = f"{fmt} {n:>8} {'judgments' if fmt == 'raw' else 'lines'} ({mib:.0f} MiB): "
            tail = (
                f"load average {os.getloadavg()[0]:.1f}; CPU probe {min(probes):.0f}-{max(probes):.0f} ms "
                "(a fixed Python loop; lower is a faster machine)"
            )
            if unfinished:
                print(
                    f"{head}{len(unfinished)} of {args.runs} run(s) did not finish in "
                    f"{', '.join(f'{s:.0f}' for s in unfinished)} s (stopped); {tail}",
                    flush=True,
                )
            if not results:
                cleanup(ids)
                continue
            rates = [r[what] / r["seconds"] for r in results]
            print(
                f"{head}import median {statistics.median(rates):,.0f} {what}/s "
                f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}; {results[0][what]} {what}, "
                f"{results[0]['comparisons']} comparisons); "
                f"peak RSS {max(r['rss_peak_mib'] for r in results):.0f} MiB "
                f"(process before import {statistics.median(r['rss_before_mib'] for r in results):.0f} MiB); "
                f"{copy_note}CPU per run: import process "
                f"{statistics.median(r['client_cpu'] for r in results):.1f} s, PostgreSQL backend "
                f"{statistics.median(r['server_cpu'] for r in results):.1f} s; {tail}",
                flush=True,
            )
            cleanup(ids)  # after the figures: a slow clean-up must not hold them back


def run_child(path: Path, slug: str, fmt: str, timeout: float) -> dict:
    """One import in a child process; a run past `timeout` is stopped (the child and its backend) and
    reported as {"project_id", "stopped_after"}."""
    from django.db import connection

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(path), slug, fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        with connection.cursor() as cur:  # its backend would go on with the statement it was running
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [slug]
            )
            cur.execute("SELECT id FROM annotate_project WHERE slug = %s", [slug])
            found = cur.fetchone()
        return {"project_id": found[0] if found else None, "stopped_after": time.perf_counter() - t0}
    if proc.returncode:
        sys.exit(f"the import failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
