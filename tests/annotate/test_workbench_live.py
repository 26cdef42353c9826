"""Live project events over the real ASGI server: members' sockets hear pauses and guideline changes;
outsiders are refused; a write still succeeds when the channel layer is unreachable."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from channels.layers import channel_layers
from django.urls import reverse

from projects.models import Project
from projects.settings_form import form_data_from_values
from tests.servers import start_asgi

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookies(client, user) -> dict[str, str]:
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


def researcher_post(base: str, cookies: dict, path: str, data: dict) -> httpx.Response:
    with httpx.Client(base_url=base, cookies=cookies) as http:
        http.get(path)
        token = http.cookies.get("csrftoken", "")
        return http.post(path, data=data, headers={"X-CSRFToken": token, "Referer": base + path})


async def listen(base: str, slug: str, cookies: dict, trigger) -> dict | None:
    ws_url = base.replace("http://", "ws://") + f"/ws/projects/{slug}/"
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    async with websockets.connect(ws_url, origin=base, additional_headers={"Cookie": cookie}) as ws:
        await asyncio.to_thread(trigger)
        return json.loads(await asyncio.wait_for(ws.recv(), timeout=10))


@pytest.fixture
def server(tmp_path):
    proc, base = start_asgi(tmp_path)
    yield base
    proc.stop()


def test_member_socket_hears_pause_and_guideline_changes(client, server, project, annotator, researcher):
    ann = session_cookies(client, annotator)
    res = session_cookies(client.__class__(), researcher)
    controls = reverse("workbench_controls", args=[project.slug])

    def pause():
        assert researcher_post(server, res, controls, {"action": "pause"}).status_code == 200

    assert asyncio.run(listen(server, project.slug, ann, pause)) == {"kind": "paused"}

    def guidelines():
        researcher_post(server, res, controls, {"action": "guidelines", "guidelines": "Be *kind*."})

    assert asyncio.run(listen(server, project.slug, ann, guidelines)) == {"kind": "guidelines"}
    project.refresh_from_db()
    assert project.paused and project.guidelines == "Be *kind*."

    def settings_page():  # the project's Settings page tells open workbenches too
        data = form_data_from_values({"guidelines": "Be *brief*."}, project)
        settings_url = reverse("project_settings", args=[project.slug])
        assert researcher_post(server, res, settings_url, data).status_code == 302

    assert asyncio.run(listen(server, project.slug, ann, settings_page)) == {"kind": "guidelines"}


def test_outsider_socket_is_refused(client, server, project, outsider):
    cookies = session_cookies(client, outsider)
    with pytest.raises(websockets.exceptions.WebSocketException):
        asyncio.run(listen(server, project.slug, cookies, lambda: None))


def test_pause_is_saved_even_when_the_channel_layer_is_unreachable(client, project, researcher, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    channel_layers.backends.clear()
    try:
        client.force_login(researcher)
        resp = client.post(reverse("workbench_controls", args=[project.slug]), {"action": "pause"})
        assert resp.status_code == 200
        assert Project.objects.get(pk=project.pk).paused
    finally:
        channel_layers.backends.clear()
