"""Load run: simulated annotators against the ASGI server with PostgreSQL and Redis, then the invariant checks.

    python -m tests.load.run --users 200 --think-seconds 150 --no-think-seconds 150

Builds a fixture project (k = `--k`, `--comparisons` comparisons, one logged-in session per annotator),
starts uvicorn (`--workers` processes) against DATABASE_URL and REDIS_URL, runs Locust headless
(`tests/load/locustfile.py`: claim -> draft -> submit, first with think time, then without) and checks the
database afterwards: no comparison over k, no annotator twice on a comparison, every acknowledged submission
stored exactly once, nothing stored that no client sent, counters equal to the judgments. Prints the
throughput, p50 / p95 / p99 per endpoint and phase, the answers by status code, CPU seconds and the load
average. Exits 1 when an invariant breaks or any request got a 500.

Locust runs as its own process: it monkey-patches the standard library with gevent, which this process
(Django, psycopg) must not be.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.load.workload import (
    INVARIANTS,
    ROOT,
    check_database,
    cpu_seconds,
    make_fixture,
    setup_django,
    start_uvicorn,
    tree_cpu_seconds,
)
from tests.servers import stop_popen

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
ENDPOINTS = ("claim", "draft", "submit")


@dataclass
class LoadConfig:
    """One run's shape and the server settings it states in its report."""

    users: int = 200
    think_seconds: float = 150.0
    no_think_seconds: float = 150.0
    think: tuple[float, float] = (2.0, 6.0)
    comparisons: int = 20000
    k: int = 3
    workers: int = 2
    pool_max: int = 10
    pool_timeout: float = 10.0
    max_inflight: int = 200
    submit_rate: float = 10.0
    submit_burst: int = 20
    spawn_rate: float = 50.0
    give_up_seconds: float = 120.0

    @property
    def seconds(self) -> float:
        return self.think_seconds + self.no_think_seconds

    def server_env(self) -> dict[str, str]:
        """The settings the server runs with (config/settings.py names them)."""
        return {
            "DB_POOL_MAX": str(self.pool_max),
            "DB_POOL_MIN": str(min(self.pool_max, 4)),
            "DB_POOL_TIMEOUT": str(self.pool_timeout),
            "ARBITER_MAX_INFLIGHT": str(self.max_inflight),
            "ARBITER_SUBMIT_RATE": str(self.submit_rate),
            "ARBITER_SUBMIT_BURST": str(self.submit_burst),
            "LOG_LEVEL": "WARNING",
        }

    def describe(self) -> str:
        phases = []
        if self.think_seconds > 0:
            phases.append(
                f"think {self.think[0]:g}-{self.think[1]:g} s after claim and after draft for {self.think_seconds:g} s"
            )
        if self.no_think_seconds > 0:
            phases.append(f"no think time for {self.no_think_seconds:g} s")
        return (
            f"{self.users} annotators, k={self.k}; uvicorn --workers {self.workers}; per worker: PostgreSQL pool "
            f"max {self.pool_max} (timeout {self.pool_timeout:g} s), ARBITER_MAX_INFLIGHT={self.max_inflight}; "
            f"ARBITER_SUBMIT_RATE={self.submit_rate:g}/s ARBITER_SUBMIT_BURST={self.submit_burst} per user; {', then '.join(phases)}"
        )


@dataclass
class LoadResult:
    config: LoadConfig
    check: dict[str, int]
    statuses: Counter[str]
    stats: dict[str, dict[str, float]]
    acks: list[dict]
    errors: list[dict]
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    loadavg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def server_errors(self) -> int:
        """Answers that are bugs: any 5xx except 503 (the deliberate "busy / database unavailable")."""
        return sum(n for key, n in self.statuses.items() if _code(key) >= 500 and _code(key) != 503)

    @property
    def refused(self) -> int:
        """4xx answers other than 409 (refused: a stale draft, a full comparison) and 429 (retried): a client
        and server that disagree on the contract."""
        return sum(
            n for key, n in self.statuses.items() if 400 <= _code(key) < 500 and _code(key) not in (409, 429)
        )

    @property
    def broken(self) -> list[str]:
        return [name for name in INVARIANTS if self.check.get(name, 0)]

    @property
    def ok(self) -> bool:
        return not self.broken and not self.server_errors and not self.refused

    def report(self) -> str:
        c = self.config
        lines = [f"load: {c.describe()}"]
        for ph, seconds in (("think", c.think_seconds), ("no-think", c.no_think_seconds)):
            if seconds <= 0:
                continue
            acks = [a for a in self.acks if a["phase"] == ph]
            e2e = sorted(a["seconds"] for a in acks)
            lines.append(
                f"phase {ph} ({seconds:g} s): {len(acks) / seconds:.1f} acknowledged submits/s; submit end to end "
                f"(with retries) p50 {_pct(e2e, 0.5):.0f} p99 {_pct(e2e, 0.99):.0f} ms"
            )
            lines.append(
                f"  {'endpoint':<9}{'requests':>9}{'req/s':>8}{'fail':>7}{'p50':>7}{'p95':>7}{'p99':>7}  ms"
            )
            for endpoint in ENDPOINTS:
                row = self.stats.get(f"{endpoint} [{ph}]")
                if row:
                    lines.append(
                        f"  {endpoint:<9}{row['requests']:>9.0f}{row['requests'] / seconds:>8.1f}"
                        f"{row['failures']:>7.0f}{row['p50']:>7.0f}{row['p95']:>7.0f}{row['p99']:>7.0f}"
                    )
        lines.append(
            "answers by status (0 = no answer): "
            + ", ".join(f"{key} x{n}" for key, n in sorted(self.statuses.items()))
        )
        cores = os.cpu_count()
        lines.append(
            f"CPU seconds over {self.wall:.0f} s wall: "
            + ", ".join(f"{name} {sec:.0f}" for name, sec in self.cpu.items())
            + f"; {cores} cores; load average {self.loadavg[0]:.1f} / {self.loadavg[1]:.1f} / {self.loadavg[2]:.1f}"
        )
        lines.append("database check: " + ", ".join(f"{k}={v}" for k, v in self.check.items()))
        verdict = (
            "OK: invariants hold, no 500, no unexpected 4xx"
            if self.ok
            else f"FAILED: broken {self.broken}, {self.server_errors} x 5xx other than 503, {self.refused} x 4xx"
        )
        lines.append(verdict)
        return "\n".join(lines)


def _code(status_key: str) -> int:
    """The status code in a `statuses.json` key: "<endpoint> <code>[ <why>]"."""
    return int(status_key.split()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000


def write_plan(out: Path, slug: str, sessions: list[tuple[str, str]], config: LoadConfig) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "slug": slug,
        "sessions": sessions,
        "think_seconds": config.think_seconds,
        "think": list(config.think),
        "give_up_seconds": config.give_up_seconds,
        "out": str(out),
    }
    path = out / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def start_locust(config: LoadConfig, base_url: str, plan: Path) -> subprocess.Popen:
    """Locust headless for the run's length; users finish the task in hand (up to 60 s) when it ends."""
    out = plan.parent
    env = dict(os.environ, ARBITER_LOAD_PLAN=str(plan), PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        base_url,
        "--users",
        str(config.users),
        "--spawn-rate",
        str(config.spawn_rate),
        "--run-time",
        f"{max(1, round(config.seconds))}s",
        "--stop-timeout",
        "60",
        "--csv",
        str(out / "locust"),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    log = open(out / "locust.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def read_outcome(
    out: Path,
) -> tuple[list[dict], set[str], Counter[str], dict[str, dict[str, float]], list[dict]]:
    """What the clients saw: acknowledged submissions, sent ids, statuses, Locust's stats, the error log."""
    acks = _jsonl(out / "acks.jsonl")
    sent = {s["sid"] for s in _jsonl(out / "sent.jsonl")}
    statuses_file = out / "statuses.json"
    statuses = Counter(json.loads(statuses_file.read_text())) if statuses_file.exists() else Counter()
    stats: dict[str, dict[str, float]] = {}
    stats_file = out / "locust_stats.csv"
    if stats_file.exists():
        with stats_file.open() as fh:
            for row in csv.DictReader(fh):
                if row["Name"] == "Aggregated":
                    continue
                stats[row["Name"]] = {
                    "requests": float(row["Request Count"]),
                    "failures": float(row["Failure Count"]),
                    "p50": _num(row["50%"]),
                    "p95": _num(row["95%"]),
                    "p99": _num(row["99%"]),
                }
    return acks, sent, statuses, stats, _jsonl(out / "errors.jsonl")


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:  # "N/A" when an endpoint saw no requests
        return float("nan")


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut short when the client was stopped
    return rows


def drive(
    config: LoadConfig,
    base_url: str,
    slug: str,
    plan: Path,
    *,
    server_pid: int | None,
    database: str,
    during=None,
) -> LoadResult:
    """Run Locust against `base_url`, then read what the clients saw and check the database.

    `during(seconds since Locust started)` is called twice a second while it runs (fault injection); it may
    block, Locust runs on in its own process."""
    from django.db import connection

    t0 = time.monotonic()
    before = cpu_seconds(server_pid, database)
    locust = start_locust(config, base_url, plan)
    started = plan.parent / "started"
    locust_cpu = 0.0
    try:
        while locust.poll() is None:
            locust_cpu = tree_cpu_seconds(locust.pid) or locust_cpu
            if during is not None and started.exists():
                during(time.time() - float(started.read_text()))
            time.sleep(0.5)
    finally:
        stop_popen(locust, timeout=90)
    wall = time.monotonic() - t0
    after = cpu_seconds(server_pid, database)
    if during is not None and hasattr(connection, "close_pool"):
        # A fault may have restarted PostgreSQL under this process's pooled connections: check on fresh ones.
        connection.close()
        connection.close_pool()
    cpu = {"server": after["server"] - before["server"], "postgres": after["postgres"] - before["postgres"]}
    cpu["locust"] = locust_cpu
    acks, sent, statuses, stats, errors = read_outcome(plan.parent)
    check = check_database(slug, {a["sid"]: a["judgment"] for a in acks}, config.k, sent)
    return LoadResult(
        config=config,
        check=check,
        statuses=statuses,
        stats=stats,
        acks=acks,
        errors=errors,
        cpu=cpu,
        wall=wall,
        loadavg=os.getloadavg(),
    )


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = LoadConfig()
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    p.add_argument("--users", type=int, default=d.users)
    p.add_argument(
        "--think-seconds", type=float, default=d.think_seconds, help="length of the think-time phase"
    )
    p.add_argument("--no-think-seconds", type=float, default=d.no_think_seconds, help="then back to back")
    p.add_argument("--think", type=float, nargs=2, default=d.think, metavar=("MIN", "MAX"))
    p.add_argument("--comparisons", type=int, default=d.comparisons)
    p.add_argument("--k", type=int, default=d.k)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--pool-max", type=int, default=d.pool_max)
    p.add_argument("--max-inflight", type=int, default=d.max_inflight)
    p.add_argument(
        "--out", type=Path, default=None, help="folder for the clients' records (default: a temp dir)"
    )
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> LoadConfig:
    return LoadConfig(
        users=args.users,
        think_seconds=args.think_seconds,
        no_think_seconds=args.no_think_seconds,
        think=tuple(args.think),
        comparisons=args.comparisons,
        k=args.k,
        workers=args.workers,
        pool_max=args.pool_max,
        max_inflight=args.max_inflight,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("a load run needs PostgreSQL: pass --database-url or set DATABASE_URL to a postgres:// URL")
    config = config_from(args)
    out = args.out or Path(tempfile.mkdtemp(prefix="arbiter-load-"))
    os.environ["REDIS_URL"] = args.redis_url
    setup_django(args.database_url)
    t0 = time.monotonic()
    slug, sessions = make_fixture(config.comparisons, config.users, config.k)
    print(
        f"fixture: project {slug}, {config.comparisons} comparisons, {config.users} sessions ({time.monotonic() - t0:.1f} s)"
    )
    env = dict(
        os.environ, DATABASE_URL=args.database_url, ARBITER_DATA_DIR=str(out / "data"), **config.server_env()
    )
    server, base = start_uvicorn(env, out / "uvicorn.log", workers=config.workers)
    try:
        result = drive(
            config,
            base,
            slug,
            write_plan(out, slug, sessions, config),
            server_pid=server.pid,
            database=database_name(args.database_url),
        )
    finally:
        stop_popen(server)
    print(result.report())
    print(f"records: {out}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
