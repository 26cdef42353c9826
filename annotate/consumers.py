"""Live project events for open workbenches: guidelines changed, labelling paused or resumed.

The socket only tells the page to refresh what it shows; the database stays the truth, and the page polls a
small status endpoint when the socket is down.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from annotate.services import project_group
from projects.access import role_in
from projects.models import Project
from projects.ws_session import ClosesOnLogout


@database_sync_to_async
def _project_for(user, slug: str) -> Project | None:
    project = Project.objects.filter(slug=slug, deleted_at__isnull=True).first()
    if project is None or role_in(user, project) is None:
        return None
    return project


class ProjectEventsConsumer(ClosesOnLogout, AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["slug"]
        project = await _project_for(user, slug) if user is not None and user.is_authenticated else None
        if project is None:
            await self.close(code=4404)
            return
        self.group = project_group(project.pk)
        if not await self.join_groups(self.group, project_id=project.pk):
            return  # the channel layer is down: closed, the page polls
        await self.accept()

    async def may_stay(self, user) -> bool:
        return await _project_for(user, self.scope["url_route"]["kwargs"]["slug"]) is not None

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()

    async def project_event(self, event: dict) -> None:
        await self.send_json({"kind": event.get("kind", "")})
