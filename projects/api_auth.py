"""Per-user API tokens: only the sha256 of a token is stored; the token itself is shown once."""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone
from ninja.security import HttpBearer

from projects.models import ApiToken, AuditEvent

TOKEN_PREFIX = "arb_"  # noqa: S105 - a label, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the raw token (never stored, shown once)."""
    name = name.strip()[:100] or "token"
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, key_hash=hash_token(raw), prefix=raw[:12])
        AuditEvent.objects.create(
            actor=user,
            actor_name=user.get_username(),
            action="api_token.create",
            target_type="api_token",
            target_id=str(token.pk),
            data={"name": name, "prefix": token.prefix},
        )
    return token, raw


def revoke_token(*, user, token_id: int) -> bool:
    with transaction.atomic():
        n = ApiToken.objects.filter(pk=token_id, user=user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if n:
            AuditEvent.objects.create(
                actor=user,
                actor_name=user.get_username(),
                action="api_token.revoke",
                target_type="api_token",
                target_id=str(token_id),
            )
    return bool(n)


def user_for_token(raw: str):
    """The active user a live token belongs to, or None."""
    if not raw:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; sets request.user to the token's owner."""

    def authenticate(self, request, token: str):
        user = user_for_token(token)
        if user is not None:
            request.user = user
        return user
