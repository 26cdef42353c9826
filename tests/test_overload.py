"""Saturation and outages answer 503 with Retry-After, never 500, over the real ASGI server and PostgreSQL:
a request that gets no pooled connection in time, a request over the in-flight limit, and every request while
the database is unreachable. JSON endpoints answer JSON; pages answer a short HTML page."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import httpx
import pytest
from django.db import connection, transaction

from annotate.models import Assignment, JudgmentRevision
from config.overload import LoginGateMiddleware
from tests.load.workload import ANSWERS, make_fixture
from tests.servers import free_port, start_asgi

pytestmark = pytest.mark.django_db(transaction=True)


def client(base: str, session: tuple[str, str]) -> httpx.Client:
    sessionid, csrf = session
    return httpx.Client(
        base_url=base,
        cookies={"sessionid": sessionid, "csrftoken": csrf},
        headers={"X-CSRFToken": csrf, "Referer": base + "/"},
        timeout=30,
    )


def wait_for_lock_waiter() -> None:
    """Until a server backend waits on the row lock this test holds."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    raise TimeoutError("the submit never waited on the lock")


def submit_stuck_on_a_row_lock(base: str, slug: str, session, then) -> httpx.Response:
    """A submit that holds its server thread and pooled connection (waiting on a row lock this test holds)
    while `then()` runs; returns the submit's answer once the lock is released."""
    with client(base, session) as http:
        assignment = http.post(f"/api/projects/{slug}/claim/").json()["assignment"]
    answers: list[httpx.Response] = []
    body = {"answers": ANSWERS, "submission_id": uuid.uuid4().hex}

    def submit() -> None:
        with client(base, session) as http:
            answers.append(http.post(f"/api/projects/{slug}/assignments/{assignment}/submit/", json=body))

    with transaction.atomic():
        Assignment.objects.select_for_update().get(pk=assignment)
        worker = threading.Thread(target=submit)
        worker.start()
        wait_for_lock_waiter()
        then()
    worker.join(30)
    assert JudgmentRevision.objects.filter(submission_id=body["submission_id"]).count() == 1
    return answers[0]


def assert_json_503(resp: httpx.Response, retry_after: str) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == retry_after
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "retry" in resp.json()["error"].lower()


def test_request_that_gets_no_pooled_connection_in_time_answers_503_not_500(tmp_path):
    slug, sessions = make_fixture(4, 2, 3)
    server, base = start_asgi(tmp_path, {"DB_POOL_MIN": "1", "DB_POOL_MAX": "1", "DB_POOL_TIMEOUT": "0.5"})
    seen: dict[str, httpx.Response] = {}

    def while_the_only_connection_is_held() -> None:
        with client(base, sessions[1]) as http:
            seen["claim"] = http.post(f"/api/projects/{slug}/claim/")
            seen["page"] = http.get(f"/p/{slug}/label/")

    try:
        submitted = submit_stuck_on_a_row_lock(base, slug, sessions[0], while_the_only_connection_is_held)
    finally:
        server.stop()
    assert_json_503(seen["claim"], "2")
    assert seen["page"].status_code == 503
    assert "briefly unavailable" in seen["page"].text
    assert submitted.status_code == 200  # the held request itself completes once the lock is released
    assert "database unavailable for POST" in server.output()


def test_request_over_the_in_flight_limit_answers_503_at_once(tmp_path):
    slug, sessions = make_fixture(4, 2, 3)
    server, base = start_asgi(tmp_path, {"ARBITER_MAX_INFLIGHT": "1"})
    seen: dict[str, httpx.Response] = {}

    def while_one_request_is_in_flight() -> None:
        with client(base, sessions[1]) as http:
            seen["claim"] = http.post(f"/api/projects/{slug}/claim/")
            seen["page"] = http.get(f"/p/{slug}/label/", headers={"Accept": "text/html"})

    try:
        submitted = submit_stuck_on_a_row_lock(base, slug, sessions[0], while_one_request_is_in_flight)
        with client(base, sessions[1]) as http:  # the slot is free again
            after = http.post(f"/api/projects/{slug}/claim/")
    finally:
        server.stop()
    assert_json_503(seen["claim"], "1")
    assert seen["page"].status_code == 503 and "busy" in seen["page"].text
    assert submitted.status_code == 200
    assert after.status_code == 200 and after.json()["assignment"] is not None


def test_every_request_answers_503_while_the_database_is_unreachable(tmp_path):
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/arbiter"  # nothing listens there
    server, base = start_asgi(tmp_path, {"DATABASE_URL": nowhere, "DB_POOL_TIMEOUT": "1"})
    session = ("x" * 32, "c" * 32)  # any session cookie: loading it needs the database
    try:
        with client(base, session) as http:
            claim = http.post("/api/projects/any/claim/")
            draft = http.post("/p/any/label/1/draft/", json={"data": {}, "version": 0})
            page = http.get("/p/any/label/", headers={"Accept": "text/html"})
            api = http.get("/api/projects", headers={"Authorization": "Bearer nothing"})
    finally:
        server.stop()
    assert_json_503(claim, "2")
    assert_json_503(draft, "2")
    assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
    assert "Arbiter is briefly unavailable" in page.text
    assert api.status_code == 503
    assert "Internal Server Error" not in server.output()


def http_scope(method: str, path: str) -> dict:
    """The parts of an ASGI HTTP scope the login gate reads."""
    return {"type": "http", "method": method, "path": path}


def test_login_gate_lets_one_password_login_into_django_at_a_time_and_everything_else_through():
    """The login storm: logins past the limit wait on the event loop, not on a request thread; other requests
    (a claim) pass the gate while it is full."""
    inside: list[str] = []
    release = asyncio.Event()

    async def app(scope, receive, send) -> None:
        inside.append(f"{scope['method']} {scope['path']}")
        if scope["method"] == "POST" and scope["path"] == "/login/":
            await release.wait()  # hashing

    gate = LoginGateMiddleware(app, 1, ("/login/",))

    async def storm() -> None:
        first = asyncio.create_task(gate(http_scope("POST", "/login/"), None, None))
        second = asyncio.create_task(gate(http_scope("POST", "/login/"), None, None))
        for _ in range(5):
            await asyncio.sleep(0)  # let both start: the first enters, the second waits at the gate
        await gate(http_scope("POST", "/api/projects/p/claim/"), None, None)  # not a login: straight in
        await gate(http_scope("GET", "/login/"), None, None)  # the form: no password, straight in
        assert inside == ["POST /login/", "POST /api/projects/p/claim/", "GET /login/"]
        release.set()
        await asyncio.gather(first, second)
        assert inside[-1] == "POST /login/"

    asyncio.run(storm())


def test_login_forms_have_a_gate_of_their_own_that_neither_waits_for_the_hashing_nor_holds_up_other_pages():
    """Everyone opening the login page at once: past `page_limit` the forms wait on the event loop (not on the
    request threads a claim needs); they pass while the password gate is full, and the password gate does not wait
    for them."""
    inside: list[str] = []
    hashing, rendering = asyncio.Event(), asyncio.Event()

    async def app(scope, receive, send) -> None:
        inside.append(f"{scope['method']} {scope['path']}")
        if scope["path"] == "/login/":
            await (hashing if scope["method"] == "POST" else rendering).wait()

    gate = LoginGateMiddleware(app, 1, ("/login/",), page_limit=1)

    async def storm() -> None:
        tasks = [
            asyncio.create_task(gate(http_scope(method, "/login/"), None, None))
            for method in ("POST", "GET", "GET", "POST")
        ]
        for _ in range(5):
            await asyncio.sleep(0)
        assert inside == ["POST /login/", "GET /login/"]  # one of each kind inside, the others at their gates
        await gate(http_scope("GET", "/p/demo/"), None, None)  # any other page: straight in
        assert inside[-1] == "GET /p/demo/"
        rendering.set()  # the forms finish: the waiting form goes in, the second login still waits
        for _ in range(5):
            await asyncio.sleep(0)
        assert inside.count("GET /login/") == 2 and inside.count("POST /login/") == 1
        hashing.set()
        await asyncio.gather(*tasks)
        assert inside.count("POST /login/") == 2

    asyncio.run(storm())
