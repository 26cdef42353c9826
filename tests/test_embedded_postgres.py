"""The embedded PostgreSQL (config/embedded_postgres.py) shared by several processes: one that ends leaves the
server to the others, the last one out stops it, and one killed outright does not keep it up for good."""

from __future__ import annotations

import signal
import subprocess
import sys

import psycopg
import pytest

from tests.servers import ROOT

pytestmark = pytest.mark.timeout(180)

# A process of the app as far as the database goes: it joins (or starts) the server, says where it listens,
# and holds its handle until its standard input closes.
HOLDER = """
import sys
from pathlib import Path
from config.embedded_postgres import database_settings
print(database_settings(Path(sys.argv[1]))["HOST"], flush=True)
sys.stdin.read()
"""


def join(data_dir) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.host = proc.stdout.readline().strip()
    assert proc.host, f"the process could not start or join the server (exit {proc.poll()})"
    return proc


def leave(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    assert proc.wait(60) == 0


def serving(host: str) -> bool:
    try:
        with psycopg.connect(dbname="arbiter", user="postgres", host=host, connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_the_server_runs_while_any_process_holds_it_and_stops_after_the_last(tmp_path):
    web = join(tmp_path / "data")
    command = join(tmp_path / "data")
    assert command.host == web.host and serving(web.host)
    leave(command)  # a manage.py command ends: the web server's database stays up
    assert serving(web.host)
    leave(web)
    assert not serving(web.host)
    again = join(tmp_path / "data")  # a later start finds the cluster and its data again
    assert serving(again.host)
    leave(again)


def test_a_process_killed_outright_does_not_keep_the_server_up(tmp_path):
    killed = join(tmp_path / "data")
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    assert serving(killed.host)  # nothing stopped it: its exit hooks never ran
    last = join(tmp_path / "data")
    leave(last)
    assert not serving(last.host)
