"""With Redis down the workbench still labels: a private redis-server (its own port) backs the real ASGI
server's cache, broker and channel layer; once it is stopped, the page opens, claims, drafts and submits still
succeed and store the judgment (sessions live in PostgreSQL, the submit limiter fails open, the dashboard's
recompute is skipped with a warning); only the live-update socket is refused, and the page falls back to polling."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import websockets

from annotate.models import JudgmentRevision
from tests.backends import missing
from tests.load.workload import ANSWERS, make_fixture
from tests.private_servers import PrivateRedis, redis_server_missing
from tests.servers import start_asgi

pytestmark = pytest.mark.django_db(transaction=True)


def label_one(http: httpx.Client, slug: str) -> tuple[int, str]:
    """The annotator's round trip: page, claim, draft, submit. Returns the judgment id and the submission id."""
    assert http.get(f"/p/{slug}/label/").status_code == 200
    claim = http.post(f"/api/projects/{slug}/claim/")
    assert claim.status_code == 200, claim.text
    assignment = claim.json()["assignment"]
    draft = http.post(f"/p/{slug}/label/{assignment}/draft/", json={"data": ANSWERS, "version": 0})
    assert draft.status_code == 200, draft.text
    sid = uuid.uuid4().hex
    submit = http.post(
        f"/api/projects/{slug}/assignments/{assignment}/submit/",
        json={"answers": ANSWERS, "submission_id": sid, "draft_version": draft.json()["version"]},
    )
    assert submit.status_code == 200, submit.text
    return submit.json()["judgment"], sid


async def socket_opens(base: str, slug: str, cookie: str) -> bool:
    url = base.replace("http://", "ws://") + f"/ws/projects/{slug}/"
    try:
        async with websockets.connect(
            url, origin=base, additional_headers={"Cookie": cookie}, open_timeout=10
        ):
            return True
    except (websockets.exceptions.WebSocketException, OSError, TimeoutError):
        return False


def test_workbench_labels_while_redis_is_down(tmp_path):
    if reason := redis_server_missing():
        missing(reason)
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    slug, [(sessionid, csrf)] = make_fixture(6, 1, 3)
    server, base = start_asgi(tmp_path, {"REDIS_URL": redis.url, "CELERY_BROKER_URL": redis.url})
    cookie = f"sessionid={sessionid}; csrftoken={csrf}"
    http = httpx.Client(
        base_url=base,
        cookies={"sessionid": sessionid, "csrftoken": csrf},
        headers={"X-CSRFToken": csrf, "Referer": base + "/"},
        timeout=30,
    )
    try:
        assert asyncio.run(socket_opens(base, slug, cookie))  # live updates while Redis is up
        label_one(http, slug)
        redis.stop()
        judgments = [label_one(http, slug) for _ in range(3)]
        socket_while_down = asyncio.run(socket_opens(base, slug, cookie))
        redis.start()
        judgments.append(label_one(http, slug))
    finally:
        http.close()
        server.stop()
        redis.stop()
    for judgment, sid in judgments:
        assert JudgmentRevision.objects.get(submission_id=sid).judgment_id == judgment
    assert not socket_while_down  # live updates pause; the page polls the status endpoint meanwhile
    log = server.output()
    assert "submit rate limit skipped: cache unavailable" in log
    assert "Internal Server Error" not in log
