"""Real processes for tests: the ASGI server (uvicorn) and a Celery worker, on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection

from config.server import uvicorn_argv

ROOT = Path(__file__).resolve().parent.parent


def test_database_env() -> dict[str, str]:
    """Environment that points a child process at the database this test session uses: a libpq URL whose
    `host` is a TCP host or, for the embedded server, the folder of its unix socket."""
    env = dict(os.environ)
    db = connection.settings_dict
    options = db.get("OPTIONS", {})  # a URL's ?host=…&port=… lands here (dj-database-url)
    params = {
        "host": db.get("HOST") or options.get("host") or "127.0.0.1",
        "port": db.get("PORT") or options.get("port") or 5432,
    }
    user = quote(db.get("USER") or "postgres", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    env["DATABASE_URL"] = f"postgres://{user}{password}@/{quote(db['NAME'], safe='')}?{urlencode(params)}"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("ARBITER_DATA_DIR", str(settings.DATA_DIR))
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


def stop_popen(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def uvicorn_args(port: int, workers: int = 1) -> list[str]:
    """The ASGI server on loopback with the shipped flags (config/server.py, as docker-compose and `manage.py
    serve` run it): `workers` processes under uvicorn's supervisor, warnings and up logged, no access log."""
    return uvicorn_argv(sys.executable, host="127.0.0.1", port=port, workers=workers, log_level="warning")


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._fh, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        stop_popen(self.proc)
        self._fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_asgi(tmp: Path, extra_env: dict[str, str] | None = None, workers: int = 1) -> tuple[Process, str]:
    port = free_port()
    env = test_database_env() | (extra_env or {})
    proc = Process(uvicorn_args(port, workers), env, tmp / f"uvicorn-{port}.log")
    try:
        wait_for_port(port, proc.proc)
    except Exception:
        proc.stop()
        raise RuntimeError(proc.output())
    return proc, f"http://127.0.0.1:{port}"


def start_worker(
    tmp: Path, queues: str = "default,cpu,gpu", extra_env: dict[str, str] | None = None, name: str = "test"
) -> Process:
    env = test_database_env() | (extra_env or {})
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        queues,
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "-n",
        f"{name}-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    return Process(args, env, tmp / f"worker-{name}.log")
