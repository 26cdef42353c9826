"""Locust workload: annotators claim a comparison, read it, save a draft, read on, and submit it.

Read by `locust -f tests/load/locustfile.py`, which `tests/load/run.py` starts; the run's plan (project slug,
one logged-in session per simulated annotator, the think-time phase) comes from the JSON file named by
ARBITER_LOAD_PLAN, and what the clients saw goes back as files in the plan's `out` folder:

- `sent.jsonl`: every submission id a client sent, the moment before its first attempt;
- `acks.jsonl`: every submission the server acknowledged (200), with the judgment id it named;
- `errors.jsonl`: every answer other than 200 / 409, with its time, so a fault's window can be read off;
- `timings.jsonl`: every request's endpoint, status, milliseconds and time, for percentiles per window;
- `statuses.json`: answers per endpoint and status code (0 = no answer: connection refused, reset, timeout;
  a 503 says whether the worker was busy or the database unavailable);
- `started`: the wall-clock time the test started; every `t` above is seconds since then.

A client behaves like the workbench's script does when the server has a bad moment: an answer that says
"try again" (no answer at all, 429, any 5xx) is retried with the same body, after Retry-After when given,
else with a growing backoff, until it is answered or `give_up_seconds` pass. A submit keeps its submission id
across retries, so a retry of a submit that was stored but whose answer was lost returns the same judgment.

Until `think_seconds` after the start each step is followed by a think time drawn from `think`; after that
the annotators work back to back.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, events, task

from tests.load.workload import ANSWERS

PLAN = json.loads(Path(os.environ["ARBITER_LOAD_PLAN"]).read_text())
OUT = Path(PLAN["out"])
RETRY_STATUSES = {0, 429}  # and every 5xx
STATUS: Counter[str] = Counter()
_sessions = iter(PLAN["sessions"])
_start = [time.monotonic()]


def _open(name: str):
    return open(OUT / name, "a", buffering=1)  # noqa: SIM115 - line-buffered for the life of the run


SENT, ACKS, ERRORS = _open("sent.jsonl"), _open("acks.jsonl"), _open("errors.jsonl")
TIMINGS = _open("timings.jsonl")


@events.test_start.add_listener
def _started(**_kwargs) -> None:
    _start[0] = time.monotonic()
    (OUT / "started").write_text(repr(time.time()))  # the runner times its faults on the same clock


@events.quitting.add_listener
def _quitting(**_kwargs) -> None:
    (OUT / "statuses.json").write_text(json.dumps(dict(STATUS), indent=1, sort_keys=True))
    for fh in (SENT, ACKS, ERRORS, TIMINGS):
        fh.flush()


def elapsed() -> float:
    return time.monotonic() - _start[0]


def phase() -> str:
    return "think" if elapsed() < PLAN["think_seconds"] else "no-think"


class Annotator(FastHttpUser):
    wait_time = constant(0)  # the think time sits between the steps of a task, see think()
    connection_timeout = 10.0
    network_timeout = 60.0

    def on_start(self) -> None:
        sessionid, csrf = next(_sessions)
        self.slug = PLAN["slug"]
        self.headers = {
            "Cookie": f"sessionid={sessionid}; csrftoken={csrf}",
            "X-CSRFToken": csrf,
            "Referer": f"{self.host}/",
        }

    def think(self) -> None:
        if phase() == "think":
            gevent.sleep(random.uniform(*PLAN["think"]))

    @task
    def label_one(self) -> None:
        status, claimed = self.post("claim", f"/api/projects/{self.slug}/claim/", {})
        if status != 200 or claimed is None or claimed.get("assignment") is None:
            gevent.sleep(1.0)  # nothing to label now (or the server gave up on us): look again shortly
            return
        base = f"/p/{self.slug}/label/{claimed['assignment']}"
        self.think()
        status, drafted = self.post("draft", f"{base}/draft/", {"data": ANSWERS, "version": 0}, ok=(200, 409))
        # 409: this draft was stored by an attempt whose answer was lost; the newer version is in the body.
        version = drafted.get("version") if drafted else None
        self.think()
        submission_id = uuid.uuid4().hex
        SENT.write(json.dumps({"sid": submission_id, "t": round(elapsed(), 3)}) + "\n")
        t0 = time.monotonic()
        body = {"answers": ANSWERS, "submission_id": submission_id, "draft_version": version}
        url = f"/api/projects/{self.slug}/assignments/{claimed['assignment']}/submit/"
        status, answer = self.post("submit", url, body, ok=(200, 409))
        if status == 200 and answer is not None:
            record = {
                "sid": submission_id,
                "judgment": answer["judgment"],
                "t": round(elapsed(), 3),
                "phase": phase(),
                "seconds": round(time.monotonic() - t0, 4),
            }
            ACKS.write(json.dumps(record) + "\n")

    def post(
        self, endpoint: str, path: str, body: dict, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, dict | None]:
        """POST until the server gives an answer that is not "try again"; returns its status and JSON body."""
        give_up = time.monotonic() + PLAN["give_up_seconds"]
        backoff = 0.25
        while True:
            name = f"{endpoint} [{phase()}]"
            t0 = time.monotonic()
            with self.client.post(
                path, json=body, headers=self.headers, name=name, catch_response=True
            ) as resp:
                status = resp.status_code or 0
                ms = round((time.monotonic() - t0) * 1000, 1)
                TIMINGS.write(json.dumps({"t": round(elapsed(), 3), "endpoint": endpoint, "status": status, "ms": ms}) + "\n")
                payload = _json(resp) if status else None
                if status in ok:
                    STATUS[f"{endpoint} {status}"] += 1
                    resp.success()
                    return status, payload
                why = _why(status, payload)
                STATUS[f"{endpoint} {status} {why}".rstrip()] += 1
                retry = status in RETRY_STATUSES or status >= 500
                resp.failure(f"HTTP {status} {why}" if status else f"no answer: {type(resp.error).__name__}")
                record = {"t": round(elapsed(), 3), "endpoint": endpoint, "status": status, "why": why}
                ERRORS.write(json.dumps(record) + "\n")
                wait = _retry_after(resp) or backoff
            if not retry or time.monotonic() + wait > give_up:
                return status, payload
            # Jitter, so that the retries after an outage do not all arrive at once.
            gevent.sleep(wait * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, 4.0)


def _json(resp) -> dict | None:
    try:
        value = resp.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _why(status: int, payload: dict | None) -> str:
    """A 503 says why (config/overload.py): the worker was busy (in-flight limit), or the database could not
    serve the request (no pooled connection in time, or the connection refused or dropped)."""
    if status != 503:
        return ""
    message = str((payload or {}).get("error", "")).lower()
    return "database" if "database" in message else "busy" if "busy" in message else ""


def _retry_after(resp) -> float | None:
    value = (resp.headers or {}).get("Retry-After") if resp.status_code else None
    try:
        return min(float(value), 10.0) if value else None
    except ValueError:
        return None
