"""With Redis down the workbench still labels: a private redis-server (its own port) backs the real ASGI
server's cache, broker and channel layer; once it is stopped, the page opens, claims, drafts and submits still
succeed and store the judgment (sessions live in PostgreSQL, the submit limiter counts in the process instead,
the dashboard's recompute is skipped with a warning); only the live-update socket is refused, and the page falls
back to polling.

In-process, with the cache pointed at a port nothing listens on: the margins page answers, the submit limit
still limits (a local count), and the log gets one warning an interval without a traceback. Against a server
whose broker is down: starting an export answers a clear 503 (JSON for the API) and leaves the job failed with
the reason, not "queued" for ever."""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
import pytest
import websockets
from django.contrib.auth.models import Group

from annotate.models import JudgmentRevision
from curation.models import DatasetSnapshot, ExportJob
from infra import best_effort
from infra.ratelimit import submit_retry_after
from projects.access import ADMIN_GROUP
from projects.api_auth import create_token
from projects.models import Project
from tests.backends import missing
from tests.conftest import login, make_user
from tests.factories import add_judgment, crowd_annotator, make_comparison
from tests.load.workload import ANSWERS, make_fixture
from tests.private_servers import PrivateRedis, redis_server_missing
from tests.servers import free_port, start_asgi

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
    assert "Internal Server Error" not in log
    assert "Traceback" not in log  # a socket refused while Redis is down: one warning, no traceback per socket
    assert log.count("channel layer (Redis) unavailable") == 1  # the socket refused, or its channel cleaned up
    assert log.count("cache (Redis) unavailable (submit rate limit") == 1  # one warning, not one per request


@pytest.fixture
def dead_cache(settings):
    """The cache on a port nothing listens on (refused at once); the outage tracker starts afresh."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    settings.ARBITER_REDIS_RETRY_SECONDS = 0  # ask the dead cache every time: the log must still stay quiet
    settings.ARBITER_REDIS_WARN_SECONDS = 3600
    best_effort.CACHE.reset()
    yield
    best_effort.CACHE.reset()


def test_margins_page_answers_while_the_cache_is_down(client, project, researcher, dead_cache):
    """The probe's finding: GET /p/<slug>/margins/ answered 500 with Redis down."""
    for i in range(3):
        comparison = make_comparison(project, f"prompt {i}")
        for n in range(2):
            add_judgment(comparison, crowd_annotator(project, f"m{i}-{n}"), preference=-1.0)
    page = login(client, researcher).get(f"/p/{project.slug}/margins/")
    assert page.status_code == 200
    assert b"margin" in page.content.lower()


def test_submit_limit_falls_back_to_a_local_limit_while_the_cache_is_down(db, settings, dead_cache):
    """The probe's finding: with Redis down the per-user submit limit failed open (every submit allowed)."""
    settings.ARBITER_SUBMIT_RATE = 0.01  # a window of 200 s: the test cannot cross into the next one
    settings.ARBITER_SUBMIT_BURST = 2
    user_id = make_user("hasty").pk
    answers = [submit_retry_after(user_id) for _ in range(4)]
    assert answers[:2] == [None, None]
    assert all(isinstance(a, int) and a >= 1 for a in answers[2:])
    assert submit_retry_after(make_user("calm").pk) is None  # counted per user


def test_cache_outage_logs_one_warning_per_interval_without_traceback(
    client, project, researcher, settings, caplog, dead_cache
):
    """The probe's finding: every request with Redis down logged a full traceback."""
    settings.ARBITER_SUBMIT_RATE = 1000.0
    caplog.set_level(logging.WARNING)
    login(client, researcher)
    for _ in range(5):
        assert client.get(f"/p/{project.slug}/margins/").status_code == 200
        submit_retry_after(researcher.pk)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([r for r in warnings if "unavailable" in r.getMessage()]) == 1, [r.getMessage() for r in warnings]
    assert not [r for r in warnings if r.exc_info]


def test_export_with_the_broker_down_answers_a_clear_503_and_leaves_no_job_queued(tmp_path):
    """The probe's finding: the JSON API's export answered an HTML 500 with the broker down, and the job stayed
    "queued" for ever. The server's Redis (cache and broker) is a port nothing listens on."""
    project = Project.objects.create(name="Broker down", slug=f"broker-{uuid.uuid4().hex[:6]}")
    admin = make_user(f"admin-{uuid.uuid4().hex[:6]}")
    admin.groups.add(Group.objects.get_or_create(name=ADMIN_GROUP)[0])
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    _, token = create_token(user=admin, name="probe")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    server, base = start_asgi(tmp_path, {"REDIS_URL": dead, "CELERY_BROKER_URL": dead})
    try:
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            answer = http.post(
                f"/api/projects/{project.slug}/exports", json={"snapshot": snapshot.pk, "format": "trl"}
            )
    finally:
        server.stop()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert "job queue" in answer.json()["error"]
    [job] = ExportJob.objects.filter(project=project)
    assert job.status == ExportJob.Status.FAILED
    assert "broker" in job.error
    assert "Internal Server Error" not in server.output()
