"""Private PostgreSQL and Redis servers for fault tests: started under a temp folder on their own free ports,
so a test may stop, kill or restart them without touching the machine's shared servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.servers import free_port, stop_popen


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to the `postgres` account when we are root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (trust auth, loopback only) in `folder`, on its own port."""

    def __init__(self, folder: Path, bin_dir: Path):
        self.folder, self.bin = folder, bin_dir
        self.data = folder / "pgdata"
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            _as_postgres_user(
                [str(bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/arbiter_faults"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder}"
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log")]
        subprocess.run(
            _as_postgres_user([*cmd, "-o", options, "-w", *args]), check=True, stdout=subprocess.DEVNULL
        )

    def start(self) -> None:
        self._ctl("start")
        subprocess.run(
            [
                str(self.bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "arbiter_faults",
            ],
            check=False,
            stderr=subprocess.DEVNULL,
        )

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")


class PrivateRedis:
    """redis-server on its own port, nothing persisted; stop() and start() again keep the port."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        cmd = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise TimeoutError(f"redis-server did not answer on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_popen(self.proc)
            self.proc = None


def redis_server_missing() -> str | None:
    """Why a private Redis cannot be started here, or None."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        return "redis-server / redis-cli are not installed"
    return None
