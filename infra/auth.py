"""Django's ModelBackend, with the user read of every request as a prepared statement.

What it replaces: `ModelBackend.get_user`, which reads the user row through the ORM on every request (compiled
afresh, bound on the client, planned by PostgreSQL every time). Passwords, permissions, `is_active`: all
ModelBackend's own.

What it buys: the second statement of every request is one prepared statement (infra/prepared.py). Measured
side by side in bench/RESULTS.md.

Why this way: `get_user(user_id)` is the documented method of an authentication backend ("Writing an
authentication backend"), and subclassing ModelBackend is how Django's documentation extends it. Sessions
record the backend that logged them in; sessions made by `django.contrib.auth.backends.ModelBackend` before this
backend shipped end once (their backend is no longer in AUTHENTICATION_BACKENDS).
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError

from infra import prepared


@cache
def _read_sql() -> str:
    model = get_user_model()
    return f"SELECT {prepared.columns(model, 'u')} FROM {model._meta.db_table} u WHERE u.{model._meta.pk.column} = %s"


class Backend(ModelBackend):
    def get_user(self, user_id):
        model = get_user_model()
        try:
            user_id = model._meta.pk.to_python(user_id)
        except ValidationError:  # a malformed id in a session is no user
            return None
        rows = prepared.run(_read_sql(), [user_id])
        if not rows:
            return None
        user = prepared.load(model, rows[0])
        return user if self.user_can_authenticate(user) else None
