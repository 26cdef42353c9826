"""Live run progress over a websocket: `/ws/runs/<id>/`, group `run.<id>`.

The runner group_sends {"type": "run.progress"} after each progress write; this consumer only tells the page
to refresh (the database stays the truth). Only researchers and admins of the run's project may join.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from projects.access import role_in
from projects.ws_session import ClosesOnLogout

from .models import TrainingRun


@database_sync_to_async
def _watched_project(user, run_id: int) -> int | None:
    """The id of the run's project if `user` may watch the run, else None."""
    run = (
        TrainingRun.objects.select_related("project")
        .filter(pk=run_id, project__deleted_at__isnull=True)
        .first()
    )
    if run is None or role_in(user, run.project) not in ("admin", "researcher"):
        return None
    return run.project_id


class RunProgressConsumer(ClosesOnLogout, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.group = f"run.{self.run_id}"
        user = self.scope.get("user")
        project_id = None
        if user is not None and user.is_authenticated:
            project_id = await _watched_project(user, self.run_id)
        if project_id is None:
            await self.close(code=4404)
            return
        if not await self.join_groups(self.group, project_id=project_id):
            return  # the channel layer is down: closed, the page polls
        await self.accept()

    async def may_stay(self, user) -> bool:
        return await _watched_project(user, self.run_id) is not None

    async def disconnect(self, code: int) -> None:
        await self.leave_groups()

    async def run_progress(self, event: dict) -> None:
        await self.send_json({"type": "progress", "run": self.run_id})
