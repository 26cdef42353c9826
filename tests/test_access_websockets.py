"""Websocket access: each route refuses anonymous users, non-members and foreign origins, accepts a member
from an allowed origin, and closes when that user logs out."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.test import Client
from django.urls import reverse

from config.asgi import application
from curation.models import DatasetSnapshot
from projects.ws_session import LOGGED_OUT_CODE
from rewardtrain.models import TrainingRun

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
ALLOWED_ORIGIN = b"http://localhost"
FOREIGN_ORIGIN = b"http://evil.example"


@pytest.fixture
def routes(project, settings):
    settings.CHANNEL_LAYERS = IN_MEMORY
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="0" * 64)
    run = TrainingRun.objects.create(project=project, snapshot=snapshot, base_model="tiny")
    # path → the member persona that may watch it
    return {
        f"/ws/projects/{project.slug}/": "annotator",
        f"/ws/projects/{project.slug}/dashboard/": "researcher",
        f"/ws/runs/{run.pk}/": "researcher",
    }


def _session_cookie(user) -> tuple[Client, bytes]:
    client = Client()
    client.force_login(user)
    return client, f"sessionid={client.cookies['sessionid'].value}".encode()


async def _connects(path: str, cookie: bytes | None, origin: bytes) -> tuple[bool, ApplicationCommunicator]:
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie))
    scope = {"type": "websocket", "path": path, "headers": headers, "query_string": b"", "subprotocols": []}
    # (channels.testing.ApplicationCommunicator is this; importing channels.testing needs daphne)
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "websocket.connect"})
    answer = await communicator.receive_output(timeout=5)
    return answer["type"] == "websocket.accept", communicator


async def _disconnect(communicator: ApplicationCommunicator) -> None:
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(timeout=5)


def test_every_websocket_route_is_covered(routes):
    from config.routing import websocket_urlpatterns

    assert len(websocket_urlpatterns) == len(routes)


@pytest.mark.django_db(transaction=True)
def test_sockets_refuse_anonymous_outsiders_and_foreign_origins(routes, annotator, researcher, outsider):
    async_to_sync(_refusals)(routes, annotator, researcher, outsider)


async def _refusals(routes, annotator, researcher, outsider):
    personas = {"annotator": annotator, "researcher": researcher}
    for path, member in routes.items():
        _, cookie = await sync_to_async(_session_cookie)(personas[member])
        _, outsider_cookie = await sync_to_async(_session_cookie)(outsider)
        for cookie_, origin, want in [
            (None, ALLOWED_ORIGIN, False),
            (outsider_cookie, ALLOWED_ORIGIN, False),
            (cookie, FOREIGN_ORIGIN, False),
            (cookie, ALLOWED_ORIGIN, True),
        ]:
            connected, communicator = await _connects(path, cookie_, origin)
            assert connected is want, (path, origin, cookie_ is cookie)
            await _disconnect(communicator)
    # annotators may not watch the dashboard or a run
    _, ann_cookie = await sync_to_async(_session_cookie)(annotator)
    for path in list(routes)[1:]:
        connected, communicator = await _connects(path, ann_cookie, ALLOWED_ORIGIN)
        assert not connected, path
        await _disconnect(communicator)


@pytest.mark.django_db(transaction=True)
def test_sockets_close_when_their_user_logs_out(routes, annotator, researcher):
    async_to_sync(_logout_closes)(routes, annotator, researcher)


async def _logout_closes(routes, annotator, researcher):
    personas = {"annotator": annotator, "researcher": researcher}
    for path, member in routes.items():
        client, cookie = await sync_to_async(_session_cookie)(personas[member])
        connected, communicator = await _connects(path, cookie, ALLOWED_ORIGIN)
        assert connected, path
        await sync_to_async(client.post)(reverse("logout"))
        closed = await communicator.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": LOGGED_OUT_CODE}, path
        await communicator.wait()
