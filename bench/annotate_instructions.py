"""The workbench's claim + submit pair measured in instructions: a figure the machine's load does not move.

On a shared machine the CPU time of one pair swings 2–3x from minute to minute (other jobs, steal), so an
A/B of a 5 % change in `bench/annotate_bench.py` drowns in noise. This bench runs the server's Python side
alone, in one process: the ASGI application as shipped (`config.asgi.application`: the in-flight and body
limits, Django's handler with the whole chain in a worker thread, every middleware, the views, PostgreSQL and
Redis for real), called directly with the requests the page's scripts send (session cookie, CSRF header),
one annotator's claim then submit, `--pairs` times after a warm-up. It prints the CPU milliseconds per pair
and, with `--callgrind`, the instructions per pair counted by valgrind's callgrind over the measured loop
alone (instrumentation switched on and off around it with `callgrind_control`): repeat runs agree within a
few percent. Not measured here: uvicorn's HTTP parsing and the sockets to the client (a fixed cost per
request). PostgreSQL's CPU per pair is printed beside it (its backends serving this database, read from /proc:
one client at a time, so without the contention of `bench/annotate_bench.py`'s fifty).

    python bench/annotate_instructions.py --database-url postgres://postgres@127.0.0.1:5432/arbiter_instr \
        --redis-url redis://127.0.0.1:6379/0 --pairs 150 --callgrind
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/arbiter_instr")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    p.add_argument("--pairs", type=int, default=150)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--callgrind", action="store_true", help="count instructions under valgrind's callgrind")
    p.add_argument("--out", default="", help="callgrind's output file (default: a temporary one)")
    return p.parse_args()


def under_callgrind(args: argparse.Namespace) -> None:
    """Run this script again under callgrind, instrumentation off until the measured loop, and report."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("--callgrind needs valgrind (callgrind_control) on PATH")
    out = Path(args.out or tempfile.mkstemp(prefix="arbiter-callgrind-", suffix=".out")[1])
    argv = [a for a in sys.argv[1:] if a != "--callgrind"]
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    env = dict(os.environ, ARBITER_INSTR_CALLGRIND="1")
    done = subprocess.run([*cmd, sys.executable, __file__, *argv], env=env, capture_output=True, text=True)
    print(done.stdout, end="")
    if done.returncode != 0:
        sys.exit(f"the run under callgrind failed:\n{done.stderr[-4000:]}")
    totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    instructions = int(totals[0].split()[1])
    print(f"{instructions / args.pairs / 1e6:.3f} M instructions per claim+submit pair (callgrind, {out})")


def instrument(on: bool) -> None:
    if os.environ.get("ARBITER_INSTR_CALLGRIND"):
        subprocess.run(
            ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
            check=True,
            capture_output=True,
        )


def main() -> None:
    args = parse_args()
    if args.callgrind:
        under_callgrind(args)
        return
    os.environ.pop("REDIS_URL", None)
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
        os.environ["CACHE_PREFIX"] = os.environ["CHANNEL_PREFIX"] = f"instr-{uuid.uuid4().hex[:8]}"
    # The submit limiter runs (its Redis round trip is part of the pair), set above one annotator's pace.
    os.environ["ARBITER_SUBMIT_RATE"] = os.environ["ARBITER_SUBMIT_BURST"] = "100000"
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    from tests.load.workload import ANSWERS, cpu_seconds, make_fixture, setup_django

    setup_django(args.database_url)
    import orjson
    import uvloop
    from django.db import connections

    slug, sessions = make_fixture(max(100, args.warmup + args.pairs), 1, 1)
    connections.close_all()
    from config.asgi import application

    sid, csrf = sessions[0]

    async def call(path: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = [
            (b"host", b"127.0.0.1"),
            (b"cookie", f"sessionid={sid}; csrftoken={csrf}".encode()),
            (b"x-csrftoken", csrf.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answer: dict = {"body": b""}

        async def receive():
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # no disconnect while the answer is made

        async def send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            else:
                answer["body"] += message.get("body", b"")

        await application(scope, receive, send)
        return answer["status"], answer["body"]

    async def pairs(n: int) -> None:
        for _ in range(n):
            status, body = await call(f"/api/projects/{slug}/claim/")
            assignment = orjson.loads(body)["assignment"] if status == 200 else None
            if assignment is None:
                sys.exit(f"claim answered {status}: {body[:300]!r}")
            payload = orjson.dumps({"answers": ANSWERS, "submission_id": uuid.uuid4().hex})
            status, body = await call(f"/api/projects/{slug}/assignments/{assignment}/submit/", payload)
            if status != 200:
                sys.exit(f"submit answered {status}: {body[:300]!r}")

    database = connections["default"].settings_dict["NAME"]
    uvloop.run(pairs(args.warmup))
    pg = cpu_seconds(None, database)["postgres"]  # outside the counted window: it scans every process
    instrument(True)
    cpu, wall = time.process_time(), time.perf_counter()
    uvloop.run(pairs(args.pairs))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    instrument(False)
    pg = cpu_seconds(None, database)["postgres"] - pg
    print(
        f"{args.pairs} claim+submit pairs in one process: {cpu * 1000 / args.pairs:.2f} ms CPU per pair "
        f"({wall * 1000 / args.pairs:.2f} ms wall; PostgreSQL backends of {database}: "
        f"{pg * 1000 / args.pairs:.2f} ms CPU per pair; load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
