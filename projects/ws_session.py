"""Open websockets close when their user logs out, or loses the membership they were opened under.

Every consumer joins the per-user group `user.<id>` when it accepts a socket, and the group `member.<project>.<user>`
of the project it serves; the `user_logged_out` signal sends `session.ended` to the user's group and each socket of
that user closes (code 4401). A saved or deleted Membership, or a user saved inactive, sends `membership.changed`
(after the commit) to the member group (or the user group): each socket there asks its consumer whether the user may
still watch (`may_stay`, read afresh from the database) and, if not, leaves its groups at once, so no further project
event reaches it, and closes (code 4403). Best-effort: with the channel layer down the change still commits (the
socket then ends at its next reconnect, which checks access again).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from infra.best_effort import CHANNELS, guarded_async
from projects.models import Membership

log = logging.getLogger(__name__)

LOGGED_OUT_CODE = 4401
ACCESS_ENDED_CODE = 4403
LAYER_DOWN_CODE = 4503  # the channel layer (Redis) cannot be reached: the page polls instead


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def member_group(project_id: int, user_id: int) -> str:
    return f"member.{project_id}.{user_id}"


@database_sync_to_async
def fresh_user(user_id: int):
    """The user as the database has it now, or None once deactivated or deleted."""
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


class ClosesOnLogout:
    """Mixin for AsyncJsonWebsocketConsumer: `if not await self.join_groups(own_group, project_id=…): return` before
    accept(), `await self.leave_groups()` in disconnect(); override `may_stay(user)` with the consumer's access check.

    `join_groups` also joins the user's groups. When the channel layer (Redis) cannot be reached the socket is
    closed with LAYER_DOWN_CODE and the page polls instead; the log gets one warning an interval
    (infra.best_effort.CHANNELS), never a traceback per socket."""

    joined: tuple[str, ...] = ()

    async def join_groups(self, *groups: str, project_id: int | None = None) -> bool:
        names = list(groups)
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            names.append(user_group(user.pk))
            if project_id is not None:
                names.append(member_group(project_id, user.pk))
        for name in names:
            if not await guarded_async(
                CHANNELS, "websocket join", self.channel_layer.group_add, name, self.channel_name
            ):
                await self.leave_groups()
                await self.close(code=LAYER_DOWN_CODE)
                return False
            self.joined = (*self.joined, name)
        return True

    async def leave_groups(self) -> None:
        joined, self.joined = self.joined, ()
        for name in joined:
            await guarded_async(
                CHANNELS,
                "websocket leave",
                self.channel_layer.group_discard,
                name,
                self.channel_name,
                skip=False,
            )

    async def session_ended(self, event: dict) -> None:
        await self.close(code=LOGGED_OUT_CODE)

    async def may_stay(self, user) -> bool:
        """Whether `user` (fresh from the database, active) may still hold this socket."""
        return False

    async def membership_changed(self, event: dict) -> None:
        user = await fresh_user(self.scope["user"].pk)
        if user is not None and await self.may_stay(user):
            return
        await self.disconnect(ACCESS_ENDED_CODE)  # leaves every group now: no later event reaches this socket
        await self.close(code=ACCESS_ENDED_CODE)


def _send(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # noqa: BLE001 - a channel layer outage must not break logging out or a membership change
        log.warning("could not tell the websockets of %s", group, exc_info=True)


@receiver(user_logged_out, dispatch_uid="arbiter-close-sockets-on-logout")
def close_sockets_on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        _send(user_group(user.pk), {"type": "session.ended"})


@receiver(post_save, sender=Membership, dispatch_uid="arbiter-membership-saved")
@receiver(post_delete, sender=Membership, dispatch_uid="arbiter-membership-deleted")
def recheck_sockets_on_membership_change(sender, instance: Membership, **kwargs) -> None:
    group = member_group(instance.project_id, instance.user_id)
    transaction.on_commit(lambda: _send(group, {"type": "membership.changed"}))


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="arbiter-user-deactivated")
def recheck_sockets_on_user_deactivated(sender, instance, created: bool = False, **kwargs) -> None:
    if not created and not instance.is_active:
        group = user_group(instance.pk)
        transaction.on_commit(lambda: _send(group, {"type": "membership.changed"}))
