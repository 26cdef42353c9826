"""Claim + submit throughput and latency of the annotator's workbench over HTTP.

Starts the ASGI server (uvicorn, `--workers`, PostgreSQL pool `--pool` per worker), creates a fresh project with
`--comparisons` comparisons (k = `--k`) and `--annotators` annotator logins (one session each, made the way a
login makes it), then drives the JSON pair the page's scripts use:

    POST /api/projects/<slug>/claim/                        -> the reserved comparison
    POST /api/projects/<slug>/assignments/<id>/submit/      -> the judgment (idempotent by submission_id)

(a) closed loop: every annotator claims and submits back to back, no think time, for `--seconds-a`;
    prints the sustained claim+submit pairs/s.
(b) open loop: pairs start at a fixed `--rate` per second (each on an idle annotator) for `--seconds-b`;
    prints p50 / p99 latency of claim and of submit.
Then checks the database: no comparison over k, counters equal to the judgments, every accepted submission
stored exactly once (no duplicated or lost judgments).

The server runs as shipped (config/server.py: uvicorn with uvloop and httptools, no access log) with Redis as
cache when `--redis-url` is given (as docker-compose runs it; the submit rate limiter and the dashboard's
recompute marks use the cache), else the file cache of the embedded set-up. Each simulated annotator is one
HTTP/1.1 keep-alive connection with its own session cookie and CSRF token, sent as the page's scripts send
them (the `csrftoken` cookie echoed in `X-CSRFToken`). The load generator (aiohttp by default, or httpx;
asyncio, one process) shares the machine's cores with the server and PostgreSQL: its CPU is printed too.
The per-user submit rate limiter is on, at `--submit-rate` (100/s unless told): the shipped 10/s is for
people, and uvicorn's workers do not get equal shares of the 50 keep-alive connections, so the few annotators
on the less busy worker pass 10 submits/s. A client that is answered 429 or 503 waits its `retry_after`.

    python bench/annotate_bench.py --database-url postgres://postgres@127.0.0.1:5432/arbiter_workbench \
        --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.load.workload import (  # noqa: E402
    ANSWERS,
    INVARIANTS,
    check_database,
    cpu_seconds,
    make_fixture,
    setup_django,
    start_gunicorn,
    start_uvicorn,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/arbiter_workbench")
    p.add_argument("--annotators", type=int, default=50)
    p.add_argument("--comparisons", type=int, default=4000)
    p.add_argument("--k", type=int, default=3)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server worker processes (default: gunicorn 4, as docker-compose runs it: 4 x 13 threads carried "
        "129-153 pairs/s against 83-134 for 2 x 8 in the same minutes, bench/RESULTS.md; uvicorn 3)",
    )
    p.add_argument("--pool", type=int, default=8, help="PostgreSQL pool max size per worker")
    p.add_argument("--seconds-a", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=50.0, help="offered pairs/s in the open-loop phase")
    p.add_argument("--seconds-b", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--server-url", default="", help="use a running server instead of starting one")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", ""),
        help="Redis for the server's cache and channel layer, as in production (default: $REDIS_URL; "
        "empty: the embedded file cache)",
    )
    p.add_argument(
        "--submit-rate",
        type=float,
        default=100.0,
        help="the server's per-user submit limit (ARBITER_SUBMIT_RATE; 0 = off). The limiter runs (one cache "
        "round trip per submit), but above the shipped 10/s, which is for people: a simulated annotator with "
        "no think time whose connection lands on the less busy worker passes 10 submits/s",
    )
    p.add_argument(
        "--server",
        choices=("gunicorn", "uvicorn"),
        default="gunicorn",
        help="gunicorn: WSGI, gthread workers (pages and JSON, as shipped); uvicorn: the ASGI app (config/asgi.py)",
    )
    p.add_argument("--threads", type=int, default=13, help="gunicorn threads per worker (docker-compose: 13)")
    p.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp", help="HTTP client library")
    return p.parse_args()


def start_server(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": args.database_url,
            "DB_POOL_MAX": str(args.pool),
            "DB_POOL_MIN": str(min(args.pool, 4)),
            "LOG_LEVEL": "WARNING",
            "ARBITER_DATA_DIR": str(tmp),
        }
    )
    env.pop("REDIS_URL", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        env["CACHE_PREFIX"] = env["CHANNEL_PREFIX"] = f"bench-{tmp.name}"  # nothing shared with other users
    env["ARBITER_SUBMIT_RATE"] = f"{args.submit_rate:g}"
    if args.server == "gunicorn":
        args.workers = args.workers or 4
        return start_gunicorn(env, tmp / "gunicorn.log", workers=args.workers, threads=args.threads, port=args.port)
    args.workers = args.workers or 3
    return start_uvicorn(env, tmp / "uvicorn.log", workers=args.workers, port=args.port)


class AiohttpTransport:
    """One keep-alive HTTP/1.1 connection (aiohttp), the annotator's cookies and CSRF header on every request."""

    def __init__(self, base: str, headers: dict[str, str]):
        import aiohttp

        self.base = base
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, force_close=False),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
            skip_auto_headers=("User-Agent",),
        )

    async def post(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else None
        async with self.session.post(self.base + path, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def close(self) -> None:
        await self.session.close()


class HttpxTransport:
    """The same with httpx (heavier on the client's CPU)."""

    def __init__(self, base: str, headers: dict[str, str]):
        import httpx

        self.client = httpx.AsyncClient(base_url=base, headers=headers, timeout=30)

    async def post(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else None
        resp = await self.client.post(path, content=body, headers=headers)
        return resp.status_code, resp.content

    async def close(self) -> None:
        await self.client.aclose()


class Annotator:
    def __init__(self, base: str, slug: str, session: tuple[str, str], client: str):
        sid, csrf = session
        self.slug = slug
        # What a logged-in browser sends: its session cookie, the CSRF cookie, and (as the page's scripts do)
        # the CSRF cookie's value in X-CSRFToken.
        headers = {
            "Cookie": f"sessionid={sid}; csrftoken={csrf}",
            "X-CSRFToken": csrf,
            "Referer": base + "/",
        }
        transport = AiohttpTransport if client == "aiohttp" else HttpxTransport
        self.http = transport(base, headers)

    @staticmethod
    async def back_off(status: int, content: bytes) -> None:
        """As a well-behaved client does: after a 429 (rate limit) or 503 (busy), wait its retry_after."""
        if status in (429, 503):
            try:
                wait = float(orjson.loads(content).get("retry_after", 1))
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                wait = 1.0
            await asyncio.sleep(wait)

    async def pair(self, stats: dict) -> bool:
        t0 = time.perf_counter()
        status, content = await self.http.post(f"/api/projects/{self.slug}/claim/")
        t1 = time.perf_counter()
        if status != 200:
            stats["errors"].append(f"claim {status}")
            await self.back_off(status, content)
            return False
        body = orjson.loads(content)
        if body.get("assignment") is None:
            stats["empty"] += 1
            return False
        sid = uuid.uuid4().hex
        status, content = await self.http.post(
            f"/api/projects/{self.slug}/assignments/{body['assignment']}/submit/",
            orjson.dumps({"answers": ANSWERS, "submission_id": sid}),
        )
        t2 = time.perf_counter()
        if status != 200:
            stats["errors"].append(f"submit {status} {content[:200]!r}")
            await self.back_off(status, content)
            return False
        stats["claim"].append(t1 - t0)
        stats["submit"].append(t2 - t1)
        stats["accepted"][sid] = orjson.loads(content)["judgment"]
        return True


def new_stats() -> dict:
    return {"claim": [], "submit": [], "errors": [], "empty": 0, "accepted": {}}


async def closed_loop(annotators: list[Annotator], seconds: float, stats: dict) -> float:
    stop = time.perf_counter() + seconds
    done = 0

    async def run(a: Annotator) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            if await a.pair(stats):
                done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(run(a) for a in annotators))
    return done / (time.perf_counter() - t0)


async def open_loop(
    annotators: list[Annotator], rate: float, seconds: float, stats: dict
) -> tuple[float, int]:
    idle: asyncio.Queue[Annotator] = asyncio.Queue()
    for a in annotators:
        idle.put_nowait(a)
    interval = 1.0 / rate
    start = time.perf_counter()
    total = int(rate * seconds)
    tasks = []
    late = 0

    async def one(a: Annotator) -> None:
        try:
            await a.pair(stats)
        finally:
            idle.put_nowait(a)

    for i in range(total):
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle.empty():
            late += 1  # every annotator busy: the offered load is not being kept up with
        a = await idle.get()
        tasks.append(asyncio.create_task(one(a)))
    await asyncio.gather(*tasks)
    achieved = len(stats["submit"]) / (time.perf_counter() - start)
    return achieved, late


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] * 1000


async def main_async(
    args: argparse.Namespace, base: str, slug: str, sessions, server_pid: int | None
) -> tuple[dict, dict, float, float, int]:
    database = args.database_url.rsplit("/", 1)[-1]
    annotators = [Annotator(base, slug, s, args.client) for s in sessions]
    try:
        warm = new_stats()
        await closed_loop(annotators, args.warmup, warm)
        a_stats = new_stats()
        before = cpu_seconds(server_pid, database)
        a_rate = await closed_loop(annotators, args.seconds_a, a_stats)
        after = cpu_seconds(server_pid, database)
        pairs = max(1, len(a_stats["submit"]))
        a_stats["cpu_ms_per_pair"] = {k: (after[k] - before[k]) * 1000 / pairs for k in before}
        b_stats = new_stats()
        b_rate, late = await open_loop(annotators, args.rate, args.seconds_b, b_stats)
    finally:
        await asyncio.gather(*(a.http.close() for a in annotators))
    accepted = warm["accepted"] | a_stats["accepted"] | b_stats["accepted"]
    errors = warm["errors"] + a_stats["errors"] + b_stats["errors"]
    return a_stats, b_stats | {"all_accepted": accepted, "all_errors": errors}, a_rate, b_rate, late


def main() -> None:
    args = parse_args()
    setup_django(args.database_url)
    t0 = time.perf_counter()
    slug, sessions = make_fixture(args.comparisons, args.annotators, args.k)
    print(
        f"fixture: project {slug}, {args.comparisons} comparisons, k={args.k}, "
        f"{args.annotators} annotators ({time.perf_counter() - t0:.1f}s)"
    )
    tmp = Path(tempfile.mkdtemp(prefix="arbiter-bench-"))
    load_before = os.getloadavg()[0]
    proc = None
    if args.server_url:
        base = args.server_url
    else:
        proc, base = start_server(args, tmp)
    try:
        a, b, a_rate, b_rate, late = asyncio.run(
            main_async(args, base, slug, sessions, proc.pid if proc is not None else None)
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
    cores = os.cpu_count()
    from django.conf import settings

    rate = args.submit_rate
    limit = (
        f"submit rate limit {rate:g}/s per user (burst {settings.ARBITER_SUBMIT_BURST})"
        if rate
        else "no rate limit"
    )
    print(
        f"server: {args.server} --workers {args.workers}"
        f"{f' --threads {args.threads}' if args.server == 'gunicorn' else ''} (config/server.py flags), PostgreSQL pool max {args.pool} per "
        f"worker, cache {'Redis' if args.redis_url else 'file (no Redis)'}, {limit}; load generator: 1 asyncio "
        f"process ({args.client}) on the same {cores}-core machine; load average before the run {load_before:.1f}"
    )
    print(
        f"(a) closed loop, {args.annotators} annotators, no think time, {args.seconds_a:.0f}s: "
        f"{a_rate:.1f} claim+submit pairs/s "
        f"(claim p50 {pct(a['claim'], 0.5):.1f} ms, submit p50 {pct(a['submit'], 0.5):.1f} ms)"
    )
    cpu = a["cpu_ms_per_pair"]
    total = sum(cpu.values())
    print(
        "    CPU per pair in (a): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in cpu.items())
        + f" = {total:.1f} ms; {cores} cores fully ours would carry about {cores * 1000 / total:.0f} pairs/s"
    )
    print(
        f"    machine load average during the run: {os.getloadavg()[0]:.1f} (other processes share these cores)"
    )
    print(
        f"(b) open loop, offered {args.rate:.0f} pairs/s for {args.seconds_b:.0f}s (achieved {b_rate:.1f}/s, "
        f"{late} starts found every annotator busy): "
        f"claim p50 {pct(b['claim'], 0.5):.1f} ms p99 {pct(b['claim'], 0.99):.1f} ms; "
        f"submit p50 {pct(b['submit'], 0.5):.1f} ms p99 {pct(b['submit'], 0.99):.1f} ms"
    )
    if b["all_errors"]:
        kinds = Counter(error.split(" ", 2)[0] + " " + error.split(" ", 2)[1] for error in b["all_errors"])
        print(
            f"errors: {len(b['all_errors'])} ({', '.join(f'{k}: {n}' for k, n in kinds.items())}), first: {b['all_errors'][:2]}"
        )
    check = check_database(slug, b["all_accepted"], args.k)
    print("database check: " + ", ".join(f"{k}={v}" for k, v in check.items()))
    ok = all(check[k] == 0 for k in (*INVARIANTS, "unacknowledged"))
    print("zero duplicated or lost judgments" if ok else "DUPLICATED OR LOST JUDGMENTS FOUND")
    if statistics.mean([a_rate]) <= 0:
        sys.exit(1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
