"""Django's ModelBackend with the per-request user read as one plain SELECT.

`AuthenticationMiddleware` loads the logged-in user on every request through the session's backend:
`ModelBackend.get_user` does `User.objects.get(pk=…)`, whose compilation cost several times the CPU of the same
SELECT through a cursor (about 0.45 ms a request on the workbench's JSON pair, measured). This backend reads
the same row and builds the same instance (every field, Django's converters) from a cursor; everything else —
authenticating, permissions, `user_can_authenticate` (inactive users get no session), the session hash check
that logs out other sessions after a password change — is Django's.

`AuthenticationMiddleware` here is Django's, except that while it loads the user it lets this backend see the
request's session store: when `config.sessions` read the user's row in the session's own statement (see there)
and the session names that same user, the backend builds the user from that row instead of reading it again.
The checks are the same either way.

Sessions record the backend that logged them in. Sessions made before this backend was configured name
`django.contrib.auth.backends.ModelBackend` and read as logged out: their users log in once more.
"""

from __future__ import annotations

from contextvars import ContextVar

from django.contrib import auth
from django.contrib.auth import backends, get_user_model
from django.contrib.auth import middleware as auth_middleware
from django.db import connections, router
from django.utils.functional import SimpleLazyObject

from annotate.fastrows import ModelRows, hot_cursor

# The session store of the request whose user is being loaded (set only around that load).
_loading_session: ContextVar = ContextVar("arbiter_loading_session", default=None)


def get_user(request):
    """`django.contrib.auth.middleware.get_user`, with the request's session visible to the backend."""
    if not hasattr(request, "_cached_user"):
        token = _loading_session.set(request.session)
        try:
            request._cached_user = auth.get_user(request)
        finally:
            _loading_session.reset(token)
    return request._cached_user


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    def process_request(self, request):
        super().process_request(request)  # its checks, and request.auser
        request.user = SimpleLazyObject(lambda: get_user(request))


_user_rows: ModelRows | None = None


def user_rows() -> ModelRows:
    """The user model's columns and loader: the backend's own read and the one `config.sessions` joins to the
    session's statement select and load the same columns."""
    global _user_rows
    model = get_user_model()
    if _user_rows is None or _user_rows.model is not model:
        _user_rows = ModelRows(model)
    return _user_rows


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id):
        rows = user_rows()
        model = rows.model
        using = router.db_for_read(model)
        connection = connections[using]
        session = _loading_session.get()
        prefetched = getattr(session, "prefetched_user", None)
        if prefetched is not None and prefetched[0] == str(user_id):
            row = prefetched[1]  # read in the session's statement, for this very id (None: no such user)
        else:
            try:
                user_id = model._meta.pk.to_python(user_id)
            except Exception:  # noqa: BLE001 - a malformed id in a session is no user, as Django's DoesNotExist
                return None
            table = connection.ops.quote_name(model._meta.db_table)
            pk = connection.ops.quote_name(model._meta.pk.column)
            with hot_cursor(connection) as cursor:
                cursor.execute(f"SELECT {rows.columns('u')} FROM {table} u WHERE u.{pk} = %s", [user_id])
                row = cursor.fetchone()
        if row is None:
            return None
        user = rows.load(row, connection, db=using)
        return user if self.user_can_authenticate(user) else None
