"""Django's ModelBackend, with the user read of every request as a prepared statement, and a password check that
holds no database connection.

What it replaces: `ModelBackend.get_user`, which reads the user row through the ORM on every request (compiled
afresh, bound on the client, planned by PostgreSQL every time). Passwords, permissions, `is_active`: all
ModelBackend's own.

What it buys: the second statement of every request is one prepared statement (infra/prepared.py). Measured
side by side in bench/RESULTS.md.

A login storm (a shift starting at 9:00) is the other thing it is built for. ModelBackend reads the user and then
hashes the password (PBKDF2, a million rounds: hundreds of milliseconds of CPU) with the request's pooled
connection still checked out, so forty logins at once held a worker's whole pool and the annotators' claims
queued behind them for seconds. `authenticate` here does ModelBackend's work in the same order (read the user,
check the password or hash it anyway when there is no such user, so both take as long) but gives the connection
back to the pool before hashing (Django's `connection.close()`: with a pool it returns the connection; outside a
transaction only), and lets at most ARBITER_PASSWORD_CHECKS hashes run at once in a process, so logins queue
among themselves, holding nothing, and leave CPU to everyone else. The next query (the session, last_login)
takes a connection again.

Why this way: `get_user(user_id)` is the documented method of an authentication backend ("Writing an
authentication backend"), and subclassing ModelBackend is how Django's documentation extends it. Sessions
record the backend that logged them in; sessions made by `django.contrib.auth.backends.ModelBackend` before this
backend shipped end once (their backend is no longer in AUTHENTICATION_BACKENDS).
"""

from __future__ import annotations

import threading
from functools import cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.db import connections

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

    def authenticate(self, request, username=None, password=None, **kwargs):
        model = get_user_model()
        if username is None:
            username = kwargs.get(model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        try:
            user = model._meta.default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            user = None
        release_connections()
        with password_checks():
            if user is None:
                model().set_password(password)  # as long as a real check: no telling users apart (Django #20760)
                return None
            ok = user.check_password(password)
        return user if ok and self.user_can_authenticate(user) else None


def release_connections() -> None:
    """Give this thread's database connections back to the pool, unless a transaction needs them."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


@cache
def _slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(max(1, int(getattr(settings, "ARBITER_PASSWORD_CHECKS", 1))))


def password_checks() -> threading.BoundedSemaphore:
    """The per-process gate of password hashing (ARBITER_PASSWORD_CHECKS at once)."""
    return _slots()
