"""Arbiter's own system checks (`manage.py check --deploy`), registered in ProjectsConfig.ready()."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def check_secret_key_is_not_published(app_configs, **kwargs) -> list[Error]:
    """The demo's key (and .env.example's) is in this repository: sessions and CSRF tokens signed with it can be
    forged by anyone. Flagged in any mode, not only with ARBITER_PRODUCTION=1 (which refuses to start with it)."""
    if settings.SECRET_KEY.strip() in settings.PUBLIC_SECRET_KEYS:
        return [
            Error(
                "SECRET_KEY is a key published in Arbiter's repository (the demo's or .env.example's).",
                hint='Set SECRET_KEY to a long random value: python -c "import secrets; print(secrets.token_urlsafe(64))"',
                id="arbiter.E001",
            )
        ]
    return []
