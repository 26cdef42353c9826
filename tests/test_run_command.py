"""The README's run command on a fresh data folder: `manage.py serve` with the embedded defaults (a private
PostgreSQL in the data folder, a Celery worker on the filesystem broker, no Redis) brings up the demo projects,
and the logins it prints work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.servers import ROOT, free_port, wait_for_port

pytestmark = pytest.mark.timeout(300)

LOGIN_LINE = re.compile(r"^\s+(\S+)\s+/ (\S+)\s+(.+)$")


def login(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    page = client.get("/login/")
    assert page.status_code == 200
    token = client.cookies["csrftoken"]
    resp = client.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/login/"},
    )
    assert resp.status_code == 302, f"{username} could not log in with the printed password"
    return client


def test_run_command_serves_the_demo_and_the_printed_logins_work(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env |= {"ARBITER_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc, timeout=240)
        text = log.read_text(errors="replace")
        logins = {m[1]: (m[2], m[3]) for m in map(LOGIN_LINE.match, text.splitlines()) if m}
        assert {"admin", "researcher", "annotator1", "annotator2"} <= logins.keys(), text
        base = f"http://127.0.0.1:{port}"

        researcher = login(base, "researcher", logins["researcher"][0])
        assert researcher.get("/p/hh-demo/dashboard/").status_code == 200
        assert researcher.get("/p/coding-demo/").status_code == 200

        annotator = login(base, "annotator1", logins["annotator1"][0])
        assert annotator.get("/p/coding-demo/label/").status_code == 200
        claim = annotator.post(
            "/api/projects/coding-demo/claim/", headers={"X-CSRFToken": annotator.cookies["csrftoken"]}
        )
        assert claim.status_code == 200 and claim.json()["assignment"] is not None

        admin = login(base, "admin", logins["admin"][0])
        assert admin.get("/admin/").status_code == 200
        for client in (researcher, annotator, admin):
            client.close()

        # The embedded worker (filesystem broker, beat) came up beside the web server.
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "ready" in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
