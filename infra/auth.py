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
transaction only). The hash itself runs on a small pool of ARBITER_PASSWORD_CHECKS threads per process, each at
a lower CPU priority (nice ARBITER_PASSWORD_NICE, a per-thread attribute on Linux): logins queue among
themselves, holding nothing, and the annotators' claims and submits get the CPU first. The next query (the
session, last_login) takes a connection again.

Why this way: `get_user(user_id)` is the documented method of an authentication backend ("Writing an
authentication backend"), and subclassing ModelBackend is how Django's documentation extends it. Sessions
record the backend that logged them in; sessions made by `django.contrib.auth.backends.ModelBackend` before this
backend shipped end once (their backend is no longer in AUTHENTICATION_BACKENDS).
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
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
        if user is None:  # as long as a real check: no telling users apart (Django #20760)
            hashed(model().set_password, password)
            return None
        ok = hashed(user.check_password, password)
        return user if ok and self.user_can_authenticate(user) else None


def release_connections() -> None:
    """Give this thread's database connections back to the pool, unless a transaction needs them."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


def _lower_priority() -> None:
    """Runs first in each hashing thread: a nicer CPU priority for this thread alone (Linux keeps the nice value
    per thread); where that is not so or not allowed the thread runs as it is."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), int(settings.ARBITER_PASSWORD_NICE))


@cache
def _hashing_threads() -> ThreadPoolExecutor:
    workers = max(1, int(settings.ARBITER_PASSWORD_CHECKS))
    return ThreadPoolExecutor(workers, thread_name_prefix="password-hash", initializer=_lower_priority)


def _in_hashing_thread(fn, *args):
    try:
        return fn(*args)
    finally:
        connections.close_all()  # a hash upgrade saves the user: that connection goes back too


def hashed(fn, *args):
    """`fn(*args)` (a password check or hash) on the hashing threads; the caller waits holding no connection."""
    return _hashing_threads().submit(_in_hashing_thread, fn, *args).result()
