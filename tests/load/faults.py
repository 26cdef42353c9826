"""Fault run: the load run with things going wrong, against a private PostgreSQL and Redis on their own ports.

    python -m tests.load.faults

Starts PostgreSQL (initdb + pg_ctl, binaries from `--pg-bin`) and `redis-server` under a temp folder, each on
a free port, then runs one load scenario per fault (a fresh project, a fresh uvicorn with 2 workers, Locust
with `--users` annotators thinking 2-6 s after claim and after draft, or back to back with `--no-think`; the
fault `--fault-at` seconds in):

- `kill -9 a web worker`: SIGKILL to one uvicorn worker; uvicorn's supervisor starts a new one;
- `kill -9 the web process`: SIGKILL to uvicorn's supervisor and all its workers at once; a new server starts
  on the same port (clients see refused connections meanwhile and retry);
- `kill -9 the Celery worker`: an import job (`--import-lines` lines, into a project of its own) is started on
  the private worker (solo pool, with beat: the job sweep runs every 30 s, the job lease is 5 s); once it runs,
  the worker is killed and another started; the sweep re-queues the job, which must end imported exactly once;
- `Redis unreachable`: the web process starts with REDIS_URL and CELERY_BROKER_URL on a port nothing listens
  on, for the whole scenario (cache, broker, channel layer all gone from the start);
- `login storm`: `--storm` users log in at once (GET the form, POST the password: real PBKDF2) while the
  annotators label (accounts and the storm's 200 HTTP clients are made before the load starts, as browsers
  would be open before a shift); the storm's logins are timed, and every one must succeed;
- `restart Redis`: Redis stopped and started again at once;
- `Redis down`: Redis stopped for `--redis-down` seconds: labelling goes on (sessions live in PostgreSQL, the
  submit limiter fails open, live updates pause);
- `restart PostgreSQL`: `pg_ctl restart -m fast` (in-flight transactions roll back; clients retry).

Clients retry "try again" answers with the same submission id (tests/load/locustfile.py). After each scenario
the database is checked: zero lost acknowledged judgments, zero duplicated, none over k, counters exact; and the
p50 / p99 of claim and submit are printed per phase (before the fault, in its window, after it), from every
request the clients timed (`timings.jsonl`). The machine the run shares decides the absolute figures.
Then the training faults run as their pytest tests against the same private servers (`--no-training` skips):
a worker killed mid-run resumes from its checkpoint with one model version
(tests/rewardtrain/test_resume.py), and a duplicate delivery while the first trains does not train twice
(tests/rewardtrain/test_tasks.py). Exits 1 when any invariant breaks, any request got a 500, or a test fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import psutil

from tests.load.run import LoadConfig, LoadResult, _pct, drive, write_plan
from tests.load.workload import ROOT, make_fixture, setup_django, start_uvicorn
from tests.private_servers import PrivatePostgres, PrivateRedis
from tests.servers import free_port, stop_popen

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
class Web:
    """The scenario's uvicorn: a fault may replace the process (kill -9 of the whole server)."""

    proc: subprocess.Popen
    base: str
    env: dict[str, str]
    log: Path
    workers: int

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


@dataclass
class Scenario:
    key: str  # for --only and the records' folder
    name: str
    inject: Callable[[Web], tuple[str, bool]]  # does the fault; says what it did and whether it could
    window: float  # seconds after the fault in which its errors are counted
    env: dict[str, str] = field(default_factory=dict)  # the web process's environment, over the defaults
    users: int | None = None  # annotators labelling (None: --users)
    seconds: float | None = None  # length of the load (None: --seconds)
    after: Callable[[], tuple[str, bool]] | None = None  # a check once the load is over
    prepare: Callable[[Web], None] | None = None  # set-up before the load, outside the measured window


class CeleryWorker:
    """A private Celery worker (solo pool, with beat) on the private PostgreSQL and Redis."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder, self.proc = env, folder, None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-B",
            "-Q",
            "default,cpu",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "-n",
            f"faults-{time.monotonic_ns()}@%h",
            "--loglevel",
            "WARNING",
            "-s",
            str(self.folder / "beat-schedule"),
        ]
        with open(self.folder / "worker.log", "ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> int:
        pid = self.proc.pid
        for child in psutil.Process(pid).children(recursive=True):
            child.kill()
        os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        return pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_popen(self.proc)


def trl_file(path: Path, lines: int, tag: str) -> Path:
    with path.open("w") as fh:
        for i in range(lines):
            chosen = [{"role": "assistant", "content": f"Good answer {i} {tag}"}]
            rejected = [{"role": "assistant", "content": f"Bad answer {i} {tag}"}]
            fh.write(
                json.dumps({"prompt": f"Question {i} {tag}", "chosen": chosen, "rejected": rejected}) + "\n"
            )
    return path


class LoginStorm:
    """Every account logs in at once (a thread each): GET /login/ for the CSRF cookie, POST the password,
    retrying "try again" answers.

    The threads and their HTTP clients are made before the storm (`LoginStorm(...)`, outside the measured
    window) and wait for `release()`: 200 annotators' browsers are open before 9:00 on their own machines, and
    making 200 clients here costs ~4 s of CPU (an SSL context each) on the cores the server shares, which is
    the load generator's cost, not the server's."""

    def __init__(self, base: str, accounts: list[tuple[str, str]]) -> None:
        self.took: list[float] = []
        self.failed: list[str] = []
        self.go = threading.Event()
        ready = threading.Barrier(len(accounts) + 1)
        self.threads = [
            threading.Thread(target=self._one, args=(base, *account, ready), daemon=True)
            for account in accounts
        ]
        for t in self.threads:
            t.start()
        ready.wait(timeout=120)  # every client made (BrokenBarrierError if one could not be)

    def release(self) -> dict:
        """Let every login go at once; wait for all of them; the seconds each took and who failed."""
        self.go.set()
        for t in self.threads:
            t.join()
        return {"took": self.took, "failed": self.failed}

    def _one(self, base: str, username: str, password: str, ready: threading.Barrier) -> None:
        with httpx.Client(base_url=base, timeout=300, follow_redirects=False) as http:
            ready.wait()
            self.go.wait()
            t0 = time.monotonic()
            for _ in range(30):
                try:
                    form = http.get("/login/")
                    if form.status_code >= 500 or form.status_code == 0:
                        time.sleep(1)
                        continue
                    csrf = http.cookies.get("csrftoken", "")
                    answer = http.post(
                        "/login/",
                        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
                        headers={"Referer": base + "/login/"},
                    )
                except httpx.HTTPError:
                    time.sleep(1)
                    continue
                if answer.status_code == 302:
                    self.took.append(time.monotonic() - t0)
                    return
                if answer.status_code in (429, 503) or answer.status_code >= 500:
                    time.sleep(float(answer.headers.get("Retry-After", 1)))
                    continue
                self.failed.append(f"{username}: {answer.status_code}")
                return
            self.failed.append(f"{username}: gave up")


def storm_accounts(n: int) -> list[tuple[str, str]]:
    """`n` accounts with one real password (hashed once: Django's PBKDF2, the shipped rounds)."""
    import uuid

    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    password = "a-long-shift-passphrase-9"  # noqa: S105 - a load-test persona
    encoded = make_password(password)
    tag = uuid.uuid4().hex[:6]
    users = User.objects.bulk_create(User(username=f"storm-{tag}-{i}", password=encoded) for i in range(n))
    return [(u.username, password) for u in users]


def scenarios(
    pg: PrivatePostgres, redis: PrivateRedis, args: argparse.Namespace, tmp: Path
) -> tuple[list[Scenario], CeleryWorker]:
    redis_down, storm = args.redis_down, args.storm

    def kill_worker(web: Web) -> tuple[str, bool]:
        before = uvicorn_workers(web.proc.pid)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = uvicorn_workers(web.proc.pid)
            if victim not in now and len(now) == len(before):
                return f"killed worker {victim}; uvicorn started {sorted(set(now) - set(before))}", True
            time.sleep(0.2)
        return f"killed worker {victim}; NOT restarted within 30 s", False

    def kill_web_process(web: Web) -> tuple[str, bool]:
        victims = [web.proc.pid, *uvicorn_workers(web.proc.pid)]
        t0 = time.monotonic()
        for pid in reversed(victims):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        web.proc.wait()
        for pid in victims[1:]:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).wait(10)
        web.proc, _ = start_uvicorn(web.env, web.log, workers=web.workers, port=web.port)
        return (
            f"kill -9 of uvicorn and its {len(victims) - 1} workers; serving again after "
            f"{time.monotonic() - t0:.1f} s",
            True,
        )

    def restart_redis(_web: Web) -> tuple[str, bool]:
        t0 = time.monotonic()
        redis.stop()
        redis.start()
        return f"Redis stopped and started again ({time.monotonic() - t0:.1f} s)", True

    def redis_outage(_web: Web) -> tuple[str, bool]:
        redis.stop()
        time.sleep(redis_down)
        redis.start()
        return f"Redis down for {redis_down:g} s, then started again", True

    def redis_unreachable(web: Web) -> tuple[str, bool]:
        return (
            f"the web process has run from the start with Redis on {web.env['REDIS_URL']} (nothing there)",
            True,
        )

    def restart_postgres(_web: Web) -> tuple[str, bool]:
        t0 = time.monotonic()
        pg.restart()
        return f"pg_ctl restart -m fast ({time.monotonic() - t0:.1f} s)", True

    storm_result: dict = {}
    storms: list[LoginStorm] = []

    def prepare_storm(web: Web) -> None:
        storms.append(LoginStorm(web.base, storm_accounts(storm)))

    def login_storm_fault(_web: Web) -> tuple[str, bool]:
        t0 = time.monotonic()
        result = storms.pop().release()
        storm_result.update(result, seconds=time.monotonic() - t0)
        took = sorted(result["took"])
        what = (
            f"{storm} logins at once: {len(took)} in, {len(result['failed'])} refused "
            f"{result['failed'][:3]}; all done in {storm_result['seconds']:.1f} s; login p50 {_pct(took, 0.5) / 1000:.1f} s, "
            f"p99 {_pct(took, 0.99) / 1000:.1f} s"
        )
        return what, not result["failed"] and len(took) == storm

    worker_env = dict(
        os.environ,
        DATABASE_URL=pg.url,
        REDIS_URL=redis.url,
        ARBITER_DATA_DIR=str(tmp / "celery-data"),
        ARBITER_JOB_LEASE_SECONDS="5",
        ARBITER_JOB_HEARTBEAT_SECONDS="1",
        LOG_LEVEL="WARNING",
    )
    worker = CeleryWorker(worker_env, tmp / "celery")
    job_state: dict = {}

    def kill_celery_worker(_web: Web) -> tuple[str, bool]:

        from curation.importers.jobs import start_import_job
        from curation.models import ImportJob
        from infra.uploads import DiskUpload
        from projects.models import Project

        tag = uuid.uuid4().hex[:6]
        project = Project.objects.create(name=f"Import under fire {tag}", slug=f"import-{tag}")
        source = trl_file(tmp / f"import-{tag}.jsonl", args.import_lines, tag)
        job = start_import_job(
            project=project,
            actor=None,
            upload=DiskUpload(source, source.name, source.stat().st_size, "application/jsonl"),
            fmt="trl",
        )
        job_state.update(job=job.pk, project=project.pk)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).exists():
                break
            time.sleep(0.2)
        else:
            return f"import job {job.pk} never started running", False
        time.sleep(1.0)
        if not ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).exists():
            return f"import job {job.pk} finished before the kill", False
        pid = worker.kill()
        worker.start()
        return f"kill -9 of the Celery worker {pid} while import job {job.pk} ran; a new worker started", True

    def import_job_recovered() -> tuple[str, bool]:
        from annotate.models import Comparison
        from curation.models import ImportJob

        if "job" not in job_state:
            return "no import job", False
        deadline = time.monotonic() + 180
        job = ImportJob.objects.get(pk=job_state["job"])
        while job.status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(1)
            job.refresh_from_db()
        stored = Comparison.objects.filter(project_id=job_state["project"]).count()
        ok = job.status == "succeeded" and stored == args.import_lines and job.attempts >= 2
        return (
            f"import job {job.pk}: {job.status} after {job.attempts} attempt(s) (note: {job.note!r}); "
            f"{stored} comparisons stored of {args.import_lines} lines"
        ), ok

    dead = f"redis://127.0.0.1:{free_port()}/0"
    return [
        Scenario("kill-worker", "kill -9 a web worker", kill_worker, 15.0),
        Scenario("kill-web", "kill -9 the web process", kill_web_process, 20.0),
        Scenario(
            "kill-celery", "kill -9 the Celery worker", kill_celery_worker, 20.0, after=import_job_recovered
        ),
        Scenario("restart-redis", "restart Redis", restart_redis, 10.0),
        Scenario("redis-down", "Redis down", redis_outage, redis_down + 5.0),
        Scenario(
            "redis-unreachable",
            "Redis unreachable",
            redis_unreachable,
            30.0,
            env={"REDIS_URL": dead, "CELERY_BROKER_URL": dead},
        ),
        Scenario("restart-postgres", "restart PostgreSQL", restart_postgres, 15.0),
        Scenario(
            "login-storm",
            f"login storm ({storm} logins)",
            login_storm_fault,
            60.0,
            users=args.storm_labellers,
            seconds=max(args.seconds, 150.0),
            prepare=prepare_storm,
        ),
    ], worker


@dataclass
class Outcome:
    scenario: Scenario
    result: LoadResult
    what: str  # what the fault did
    injected: bool  # the fault happened as meant (and the worker came back, for a kill)
    at: float  # seconds after Locust started
    timings: list[dict] = field(default_factory=list)
    checked: tuple[str, bool] | None = None  # the scenario's own check after the load

    @property
    def ok(self) -> bool:
        return self.injected and self.result.ok and (self.checked is None or self.checked[1])

    def percentiles(self) -> str:
        """p50 / p99 of claim and submit (every attempt the clients timed) before, in and after the window."""
        end = self.at + self.scenario.window
        phases = (
            ("before", lambda t: t < self.at),
            ("during", lambda t: self.at <= t <= end),
            ("after", lambda t: t > end),
        )
        parts = []
        for name, within in phases:
            cells = []
            for endpoint in ("claim", "submit"):
                ms = sorted(
                    r["ms"] / 1000 for r in self.timings if r["endpoint"] == endpoint and within(r["t"])
                )
                cells.append(
                    f"{endpoint} p50 {_pct(ms, 0.5):.0f} p99 {_pct(ms, 0.99):.0f} ms (n={len(ms)})"
                    if ms
                    else f"{endpoint} -"
                )
            parts.append(f"{name}: " + ", ".join(cells))
        return "; ".join(parts)

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
            f"{self.scenario.name} at {self.at:.0f} s ({r.config.users} annotators, {r.config.seconds:g} s): "
            f"{self.what}\n"
            f"  in the {self.scenario.window:g} s after it: {acked} submits acknowledged; answers retried: "
            f"{', '.join(f'{k} x{n}' for k, n in sorted(seen.items())) or 'none'}\n"
            f"  latency {self.percentiles()}\n"
            + (f"  after the load: {self.checked[0]}\n" if self.checked else "")
            + f"  whole scenario: acknowledged {c['acknowledged']} = stored {c['judgments']}; "
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
    env.update(scenario.env)
    proc, base = start_uvicorn(env, out / "uvicorn.log", workers=config.workers)
    web = Web(proc, base, env, out / "uvicorn.log", config.workers)
    done: list[tuple[str, bool, float]] = []
    if scenario.prepare is not None:
        scenario.prepare(web)

    def during(elapsed: float) -> None:
        if not done and elapsed >= fault_at:
            what, injected = scenario.inject(web)
            done.append((what, injected, elapsed))

    try:
        plan = write_plan(out, slug, sessions, config)
        result = drive(
            config, base, slug, plan, server_pid=web.proc.pid, database="arbiter_faults", during=during
        )
    finally:
        stop_popen(web.proc)
    what, injected, at = done[0] if done else ("NOT injected: the load ended first", False, 0.0)
    checked = scenario.after() if scenario.after is not None else None
    timings = []
    for line in (out / "timings.jsonl").read_text().splitlines() if (out / "timings.jsonl").exists() else []:
        try:
            timings.append(json.loads(line))
        except ValueError:
            continue
    return Outcome(scenario, result, what, injected, at, timings, checked)


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
        "--only",
        default="",
        help="kill-worker,kill-web,kill-celery,restart-redis,redis-down,redis-unreachable,restart-postgres,"
        "login-storm (default: all)",
    )
    p.add_argument("--storm", type=int, default=200, help="logins at once in `login storm`")
    p.add_argument("--storm-labellers", type=int, default=50, help="annotators labelling during the storm")
    p.add_argument("--import-lines", type=int, default=100_000, help="lines of the import the worker runs")
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
        plan, worker = scenarios(pg, redis, args, tmp)
        worker.start()
        try:
            for scenario in plan:
                if chosen and scenario.key not in chosen:
                    continue
                out = tmp / scenario.key
                seconds = scenario.seconds or args.seconds
                shape = replace(
                    config,
                    users=scenario.users or config.users,
                    think_seconds=0.0 if args.no_think else seconds,
                    no_think_seconds=seconds if args.no_think else 0.0,
                )
                outcome = run_scenario(scenario, shape, pg, redis, out, args.fault_at)
                print(outcome.summary(), flush=True)
                ok &= outcome.ok
        finally:
            worker.stop()
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
