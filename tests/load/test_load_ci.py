"""Thirty seconds of load on every CI build: 50 simulated annotators (Locust) against the real ASGI server
(2 uvicorn workers) on the test database and Redis, claim -> draft -> submit with think time, then without;
afterwards no comparison over k, no annotator twice on a comparison, every acknowledged submission stored
exactly once, counters exact, and no 500. The long run and the fault run are `python -m tests.load.run` and
`python -m tests.load.faults` (README, "Load and fault runs")."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.backends import require_redis
from tests.load.run import LoadConfig, drive, write_plan
from tests.load.workload import make_fixture
from tests.servers import start_asgi

CI_LOAD = LoadConfig(
    users=50,
    think_seconds=10.0,
    no_think_seconds=20.0,
    think=(0.5, 1.5),
    comparisons=3000,
    give_up_seconds=30.0,
)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_thirty_seconds_of_load_keep_every_invariant_and_never_answer_500(tmp_path):
    require_redis()
    slug, sessions = make_fixture(CI_LOAD.comparisons, CI_LOAD.users, CI_LOAD.k)
    server, base = start_asgi(tmp_path, CI_LOAD.server_env(), workers=CI_LOAD.workers)
    try:
        result = drive(
            CI_LOAD,
            base,
            slug,
            write_plan(tmp_path / "load", slug, sessions, CI_LOAD),
            server_pid=server.proc.pid,
            database=connection.settings_dict["NAME"],
        )
    finally:
        server.stop()
    print(result.report())
    assert result.check["acknowledged"] > 0, result.report()
    assert result.broken == [], result.report()
    assert result.server_errors == 0, result.report()
    assert result.refused == 0, result.report()
