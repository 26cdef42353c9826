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
def _may_watch(user, run_id: int) -> bool:
    run = (
        TrainingRun.objects.select_related("project")
        .filter(pk=run_id, project__deleted_at__isnull=True)
        .first()
    )
    return run is not None and role_in(user, run.project) in ("admin", "researcher")


class RunProgressConsumer(ClosesOnLogout, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.group = f"run.{self.run_id}"
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await _may_watch(user, self.run_id):
            await self.close(code=4404)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.join_user_group()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.leave_user_group()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_progress(self, event: dict) -> None:
        await self.send_json({"type": "progress", "run": self.run_id})
