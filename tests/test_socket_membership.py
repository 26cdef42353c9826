"""Sockets close when membership ends (issue 20): a deactivated, removed or demoted member's open websocket closes
(code 4403) and receives no more project events; a member who keeps access keeps the socket."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.urls import reverse

from annotate.services import project_group
from curation.models import DatasetSnapshot
from insights.dashboard import group_name
from projects.models import Membership
from projects.ws_session import ACCESS_ENDED_CODE
from rewardtrain.models import TrainingRun
from tests.test_access_websockets import ALLOWED_ORIGIN, IN_MEMORY, _connects, _session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY
    return get_channel_layer()


async def _closed(communicator) -> dict:
    answer = await communicator.receive_output(timeout=5)
    await communicator.wait(timeout=5)
    return answer


def test_deactivated_annotator_socket_closes_and_hears_no_more_events(layer, project, annotator, admin_user):
    async_to_sync(_deactivate_closes)(layer, project, annotator, admin_user)


async def _deactivate_closes(layer, project, annotator, admin_user):
    _, cookie = await sync_to_async(_session_cookie)(annotator)
    connected, socket = await _connects(f"/ws/projects/{project.slug}/", cookie, ALLOWED_ORIGIN)
    assert connected
    admin, _ = await sync_to_async(_session_cookie)(admin_user)
    membership = await Membership.objects.aget(user=annotator, project=project)
    response = await sync_to_async(admin.post)(
        reverse("project_people", args=[project.slug]), {"action": "deactivate", "membership": membership.pk}
    )
    assert response.status_code == 302
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": ACCESS_ENDED_CODE}
    await layer.group_send(project_group(project.pk), {"type": "project.event", "kind": "paused"})
    assert await socket.receive_nothing(timeout=0.5)


def test_demoted_researcher_loses_the_dashboard_socket_but_keeps_the_workbench_one(
    layer, project, researcher
):
    async_to_sync(_demote)(layer, project, researcher)


async def _demote(layer, project, researcher):
    snapshot = await DatasetSnapshot.objects.acreate(project=project, content_hash="0" * 64)
    run = await TrainingRun.objects.acreate(project=project, snapshot=snapshot, base_model="tiny")
    _, cookie = await sync_to_async(_session_cookie)(researcher)
    sockets = {}
    for path in (
        f"/ws/projects/{project.slug}/",
        f"/ws/projects/{project.slug}/dashboard/",
        f"/ws/runs/{run.pk}/",
    ):
        connected, sockets[path] = await _connects(path, cookie, ALLOWED_ORIGIN)
        assert connected, path
    membership = await Membership.objects.aget(user=researcher, project=project)
    membership.role = Membership.Role.ANNOTATOR
    await membership.asave(update_fields=["role"])
    workbench, dashboard, run_socket = sockets.values()
    assert await dashboard.receive_output(timeout=5) == {"type": "websocket.close", "code": ACCESS_ENDED_CODE}
    assert await run_socket.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": ACCESS_ENDED_CODE,
    }
    await layer.group_send(group_name(project.pk), {"type": "dashboard.updated", "computed_at": "now"})
    assert await dashboard.receive_nothing(timeout=0.5)
    await layer.group_send(project_group(project.pk), {"type": "project.event", "kind": "guidelines"})
    assert (await workbench.receive_output(timeout=5))["type"] == "websocket.send"
    await workbench.send_input({"type": "websocket.disconnect", "code": 1000})
    await workbench.wait(timeout=5)


def test_removed_member_and_deactivated_login_close_their_sockets(layer, project, annotator, annotator2):
    async_to_sync(_removed)(layer, project, annotator, annotator2)


async def _removed(layer, project, annotator, annotator2):
    path = f"/ws/projects/{project.slug}/"
    _, cookie1 = await sync_to_async(_session_cookie)(annotator)
    _, cookie2 = await sync_to_async(_session_cookie)(annotator2)
    (ok1, first), (ok2, second) = (
        await _connects(path, cookie1, ALLOWED_ORIGIN),
        await _connects(path, cookie2, ALLOWED_ORIGIN),
    )
    assert ok1 and ok2
    await Membership.objects.filter(user=annotator, project=project).adelete()
    assert await first.receive_output(timeout=5) == {"type": "websocket.close", "code": ACCESS_ENDED_CODE}
    annotator2.is_active = False
    await annotator2.asave(update_fields=["is_active"])
    assert await second.receive_output(timeout=5) == {"type": "websocket.close", "code": ACCESS_ENDED_CODE}
