"""Fault run: the load run with things going wrong, against a private PostgreSQL and Redis on their own ports.

    python -m tests.load.faults

Starts PostgreSQL (initdb + pg_ctl, binaries from `--pg-bin`) and `redis-server` under a temp folder, each on
a free port, then runs one load scenario per fault (a fresh project, a fresh uvicorn with 2 workers, Locust
with `--users` annotators thinking 2-6 s after claim and after draft, or back to back with `--no-think`; the
fault `--fault-at` seconds in):

- `kill -9 a web worker`: SIGKILL to one uvicorn worker; uvicorn's supervisor starts a new one;
- `restart Redis`: Redis stopped and started again at once;
- `Redis down`: Redis stopped for `--redis-down` seconds: labelling goes on (sessions live in PostgreSQL, the
  submit limiter fails open, live updates pause);
- `restart PostgreSQL`: `pg_ctl restart -m fast` (in-flight transactions roll back; clients retry).

Clients retry "try again" answers with the same submission id (tests/load/locustfile.py). After each scenario
the database is checked: zero lost acknowledged judgments, zero duplicated, none over k, counters exact.
Then the training faults run as their pytest tests against the same private servers (`--no-training` skips):
a worker killed mid-run resumes from its checkpoint with one model version
(tests/rewardtrain/test_resume.py), and a duplicate delivery while the first trains does not train twice
(tests/rewardtrain/test_tasks.py). Exits 1 when any invariant breaks, any request got a 500, or a test fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.load.run import LoadConfig, LoadResult, drive, write_plan
from tests.load.workload import ROOT, make_fixture, setup_django, start_uvicorn
from tests.private_servers import PrivatePostgres, PrivateRedis
from tests.servers import stop_popen

TRAINING_TESTS = [
    "tests/rewardtrain/test_resume.py::test_killed_worker_run_is_requeued_and_resumes_from_its_checkpoint",
    "tests/rewardtrain/test_tasks.py::test_duplicate_delivery_while_running_does_not_train_twice",
]


def uvicorn_workers(server_pid: int) -> list[int]:
    try:
        children = psutil.Process(server_pid).children()
        return sorted(p.pid for p in children if "resource_tracker" not in " ".join(p.cmdline()))
    except psutil.NoSuchProcess:
        return []


@dataclass
class Scenario:
    key: str  # for --only and the records' folder
    name: str
    inject: Callable[
        [subprocess.Popen], tuple[str, bool]
    ]  # does the fault; says what it did and whether it could
    window: float  # seconds after the fault in which its errors are counted


def scenarios(pg: PrivatePostgres, redis: PrivateRedis, redis_down: float) -> list[Scenario]:
    def kill_worker(server: subprocess.Popen) -> tuple[str, bool]:
        before = uvicorn_workers(server.pid)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = uvicorn_workers(server.pid)
            if victim not in now and len(now) == len(before):
                return f"killed worker {victim}; uvicorn started {sorted(set(now) - set(before))}", True
            time.sleep(0.2)
        return f"killed worker {victim}; NOT restarted within 30 s", False

    def restart_redis(_server: subprocess.Popen) -> tuple[str, bool]:
        t0 = time.monotonic()
        redis.stop()
        redis.start()
        return f"Redis stopped and started again ({time.monotonic() - t0:.1f} s)", True

    def redis_outage(_server: subprocess.Popen) -> tuple[str, bool]:
        redis.stop()
        time.sleep(redis_down)
        redis.start()
        return f"Redis down for {redis_down:g} s, then started again", True

    def restart_postgres(_server: subprocess.Popen) -> tuple[str, bool]:
        t0 = time.monotonic()
        pg.restart()
        return f"pg_ctl restart -m fast ({time.monotonic() - t0:.1f} s)", True

    return [
        Scenario("kill-worker", "kill -9 a web worker", kill_worker, 15.0),
        Scenario("restart-redis", "restart Redis", restart_redis, 10.0),
        Scenario("redis-down", "Redis down", redis_outage, redis_down + 5.0),
        Scenario("restart-postgres", "restart PostgreSQL", restart_postgres, 15.0),
    ]


@dataclass
class Outcome:
    scenario: Scenario
    result: LoadResult
    what: str  # what the fault did
    injected: bool  # the fault happened as meant (and the worker came back, for a kill)
    at: float  # seconds after Locust started

    @property
    def ok(self) -> bool:
        return self.injected and self.result.ok

    def summary(self) -> str:
        """What happened, what the clients saw in the fault's window, and the database check."""
        end = self.at + self.scenario.window
        seen = Counter(
            f"{e['endpoint']} {e['status']} {e['why']}".rstrip()
            for e in self.result.errors
            if self.at - 1 <= e["t"] <= end
        )
        acked = sum(1 for a in self.result.acks if self.at <= a["t"] <= end)
        c, r = self.result.check, self.result
        return (
            f"{self.scenario.name} at {self.at:.0f} s: {self.what}\n"
            f"  in the {self.scenario.window:g} s after it: {acked} submits acknowledged; answers retried: "
            f"{', '.join(f'{k} x{n}' for k, n in sorted(seen.items())) or 'none'}\n"
            f"  whole scenario: {c['acknowledged']} acknowledged, {c['judgments']} judgments stored; "
            f"lost {c['lost']}, duplicated {c['duplicated']}, over k {c['comparisons_over_k']}, "
            f"counter mismatches {c['counter_mismatches']}, phantom {c['phantom']}, stored but not acknowledged "
            f"{c['unacknowledged']}; 5xx other than 503: {r.server_errors}; unexpected 4xx: {r.refused} -> "
            + ("OK" if self.ok else "FAILED")
        )


def run_scenario(
    scenario: Scenario,
    config: LoadConfig,
    pg: PrivatePostgres,
    redis: PrivateRedis,
    out: Path,
    fault_at: float,
) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    slug, sessions = make_fixture(config.comparisons, config.users, config.k)
    env = dict(
        os.environ,
        DATABASE_URL=pg.url,
        REDIS_URL=redis.url,
        ARBITER_DATA_DIR=str(out / "data"),
        **config.server_env(),
    )
    server, base = start_uvicorn(env, out / "uvicorn.log", workers=config.workers)
    done: list[tuple[str, bool, float]] = []

    def during(elapsed: float) -> None:
        if not done and elapsed >= fault_at:
            what, injected = scenario.inject(server)
            done.append((what, injected, elapsed))

    try:
        plan = write_plan(out, slug, sessions, config)
        result = drive(
            config, base, slug, plan, server_pid=server.pid, database="arbiter_faults", during=during
        )
    finally:
        stop_popen(server)
    what, injected, at = done[0] if done else ("NOT injected: the load ended first", False, 0.0)
    return Outcome(scenario, result, what, injected, at)


def run_training_faults(pg: PrivatePostgres, redis: PrivateRedis, out: Path) -> bool:
    env = dict(
        os.environ,
        DATABASE_URL=pg.url,
        REDIS_URL=redis.url,
        ARBITER_DATA_DIR=str(out / "pytest"),
        ARBITER_REQUIRE_BACKENDS="1",
    )
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *TRAINING_TESTS], cwd=ROOT, env=env)
    return proc.returncode == 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--seconds", type=float, default=45.0, help="length of each scenario's load")
    p.add_argument("--fault-at", type=float, default=15.0, help="seconds into the load")
    p.add_argument("--redis-down", type=float, default=15.0, help="seconds Redis stays down in `Redis down`")
    p.add_argument(
        "--only", default="", help="kill-worker,restart-redis,redis-down,restart-postgres (default: all)"
    )
    p.add_argument("--pg-bin", type=Path, default=Path("/usr/lib/postgresql/15/bin"))
    p.add_argument("--no-training", action="store_true", help="skip the training fault tests")
    p.add_argument(
        "--no-think",
        action="store_true",
        help="annotators back to back (saturated: the limiter's 503s mix in)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="arbiter-faults-"))
    tmp.chmod(0o755)  # the postgres account runs the private cluster inside it
    pg = PrivatePostgres(tmp / "pg", args.pg_bin)
    redis = PrivateRedis(tmp / "redis")
    pg.start()
    redis.start()
    print(f"private PostgreSQL {pg.url}, Redis {redis.url}, records under {tmp}")
    os.environ["REDIS_URL"] = redis.url
    ok = True
    try:
        setup_django(pg.url)
        config = LoadConfig(
            users=args.users,
            think_seconds=0.0 if args.no_think else args.seconds,
            no_think_seconds=args.seconds if args.no_think else 0.0,
            comparisons=max(5000, args.users * 40),
        )
        print(f"load per scenario: {config.describe()}")
        chosen = {name.strip() for name in args.only.split(",") if name.strip()}
        for scenario in scenarios(pg, redis, args.redis_down):
            if chosen and scenario.key not in chosen:
                continue
            out = tmp / scenario.key
            outcome = run_scenario(scenario, config, pg, redis, out, args.fault_at)
            print(outcome.summary(), flush=True)
            ok &= outcome.ok
        if not args.no_training:
            print("training faults (pytest, against the private PostgreSQL and Redis):", flush=True)
            ok &= run_training_faults(pg, redis, tmp)
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(pg.data, ignore_errors=True)  # the clients' records and the logs stay
    print("fault run: OK, zero lost or duplicated judgments" if ok else "fault run: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
