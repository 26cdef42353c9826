"""The dashboard socket: tells an open dashboard page that fresh figures are cached (the page re-fetches)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from insights.dashboard import group_name
from projects.access import get_project_for_user
from projects.ws_session import ClosesOnLogout


@database_sync_to_async
def _project_id_for(user, slug: str) -> int | None:
    try:
        project, _ = get_project_for_user(user, slug, roles=("admin", "researcher"))
    except Http404:
        return None
    return project.pk


class DashboardConsumer(ClosesOnLogout, AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        project_id = None
        if user is not None and user.is_authenticated:
            project_id = await _project_id_for(user, self.scope["url_route"]["kwargs"]["slug"])
        if project_id is None:
            await self.close(code=4404)
            return
        self.group = group_name(project_id)
        if not await self.join_groups(self.group, project_id=project_id):
            return  # the channel layer is down: closed, the page polls
        await self.accept()

    async def may_stay(self, user) -> bool:
        return await _project_id_for(user, self.scope["url_route"]["kwargs"]["slug"]) is not None

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()

    async def receive_json(self, content, **kwargs) -> None:
        """The page says nothing worth answering."""

    async def dashboard_updated(self, event: dict) -> None:
        await self.send_json({"type": "dashboard.updated", "computed_at": event.get("computed_at")})
