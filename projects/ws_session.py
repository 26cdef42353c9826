"""Open websockets close when their user logs out.

Every consumer joins the per-user group `user.<id>` when it accepts a socket; the `user_logged_out` signal sends
`session.ended` to that group and each socket of that user closes (code 4401). Best-effort: with the channel
layer down the logout still succeeds (the socket then ends at its next reconnect, which needs a session).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

log = logging.getLogger(__name__)

LOGGED_OUT_CODE = 4401


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


class ClosesOnLogout:
    """Mixin for AsyncJsonWebsocketConsumer: call `await self.join_user_group()` before accept() and
    `await self.leave_user_group()` in disconnect()."""

    user_group_name: str | None = None

    async def join_user_group(self) -> None:
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            self.user_group_name = user_group(user.pk)
            await self.channel_layer.group_add(self.user_group_name, self.channel_name)

    async def leave_user_group(self) -> None:
        if self.user_group_name:
            await self.channel_layer.group_discard(self.user_group_name, self.channel_name)

    async def session_ended(self, event: dict) -> None:
        await self.close(code=LOGGED_OUT_CODE)


@receiver(user_logged_out, dispatch_uid="arbiter-close-sockets-on-logout")
def close_sockets_on_logout(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user.pk), {"type": "session.ended"})
    except Exception:  # noqa: BLE001 - a channel layer outage must not break logging out
        log.warning("could not close the websockets of user %s at logout", user.pk, exc_info=True)
