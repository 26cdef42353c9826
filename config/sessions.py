"""Django's database sessions, read with one plain SQL statement instead of an ORM query, the user with it.

Every authenticated request loads its session first. Django's `db` backend does it with
`Session.objects.get(session_key=…, expire_date__gt=now)`, whose compilation cost about three times the CPU of
the same SELECT through a cursor (measured: 340 µs against 116 µs a request). This store is Django's `db`
store with only that read replaced: same table, same encoding, same expiry rule, so sessions written by either
are read by both, and creating, rotating (login), deleting (logout) and clearing sessions are Django's own.
The database stays the only place a session lives, so logging out ends it even while Redis is down (unlike
`cached_db`, whose copy in the cache would outlive a delete that could not reach the cache).

The logged-in user's row comes in the same statement when this process has seen the session before: the
process remembers which user id each recent session key held (a session key never changes users: Django's
login gives a new key, logout deletes it), and the read joins that user's row. `config.auth` uses the row only
when the id in the session just read is that id, and checks it exactly as its own query's row (active, session
hash); otherwise it reads the user itself. One round trip instead of two on every authenticated request.
Nothing is cached across requests but the key → id hint and decoded session data; the session's row and the
user's row are read fresh on every request.

Decoding a session (base64, the HMAC check with the secret key, zlib, JSON) cost about a fifth of the session
read's CPU. `decode` is a pure function of the signed text and the secret keys, and a client sends the same
session text request after request, so this store remembers the decoded data of recent texts (for the same
secret keys; only data made of plain values, handed out as a fresh copy). A text is remembered only once it
has been decoded and verified: a forged or altered text is decoded, and refused, as by Django. The statement's
SQL is built once per database and user model rather than on every request.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone

from annotate.fastrows import ModelRows, hot_cursor
from config.auth import user_rows

# session key -> the user id (as stored in the session) it held when this process last read it
_user_of_key: dict[str, str] = {}
_KEYS_REMEMBERED = 20_000
_lock = threading.Lock()
# (key salt, signed session text) -> (secret key, fallback keys, decoded data) of recently decoded sessions
_decoded: dict[tuple[str, str], tuple[str, list, dict]] = {}
_TEXTS_REMEMBERED = 20_000
_PLAIN = (str, int, float, bool, type(None))


def _bounded_put(memo: dict, limit: int, key, value) -> None:
    with _lock:
        if len(memo) >= limit:
            for old in list(memo)[: limit // 10]:  # the oldest tenth
                memo.pop(old, None)
        memo[key] = value


def _remember(session_key: str, user_id: str | None) -> None:
    if user_id is None or _user_of_key.get(session_key) == user_id:
        return
    _bounded_put(_user_of_key, _KEYS_REMEMBERED, session_key, user_id)


class SessionStore(db.SessionStore):
    _rows: ModelRows | None = None
    # (database alias, vendor, session model, user model or None) -> the session read's SQL
    _sql: dict[tuple, str] = {}
    # (user id as stored in the session, the user's row or None) read with the session, for config.auth
    prefetched_user: tuple[str, tuple | None] | None = None

    @classmethod
    def _model_rows(cls) -> ModelRows:
        if cls._rows is None or cls._rows.model is not cls.get_model_class():
            cls._rows = ModelRows(cls.get_model_class())
        return cls._rows

    def _get_session_from_db(self):
        """The unexpired session row for this key, or None (and forget the key, as Django's store does)."""
        rows = self._model_rows()
        using = router.db_for_read(self.model)
        connection = connections[using]
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        self.prefetched_user = None
        user_id = _user_of_key.get(self.session_key)
        user_model = get_user_model()
        if user_id is not None and router.db_for_read(user_model) == using:
            try:
                pk = user_model._meta.pk.to_python(user_id)
            except Exception:  # noqa: BLE001 - not an id: read the session alone
                user_id = None
        else:
            user_id = None
        sql = self._read_sql(connection, rows, None if user_id is None else user_model)
        with hot_cursor(connection) as cursor:
            if user_id is None:
                cursor.execute(sql, [self.session_key, now])
            else:
                cursor.execute(sql, [pk, self.session_key, now])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        n = len(rows)
        if user_id is not None:
            user_row = row[n:]
            self.prefetched_user = (user_id, None if user_row[0] is None else user_row)
        return rows.load(row[:n], connection, db=using)

    def _read_sql(self, connection, rows: ModelRows, user_model) -> str:
        """The session's SELECT, with the user's row joined when `user_model` is given (built once)."""
        key = (connection.alias, connection.vendor, self.model, user_model)
        sql = self._sql.get(key)
        if sql is None:
            table = connection.ops.quote_name(self.model._meta.db_table)
            if user_model is None:
                sql = f"SELECT {rows.columns('s')} FROM {table} s WHERE s.session_key = %s AND s.expire_date > %s"
            else:
                users = user_rows()
                user_table = connection.ops.quote_name(user_model._meta.db_table)
                user_pk = connection.ops.quote_name(user_model._meta.pk.column)
                sql = (
                    f"SELECT {rows.columns('s')}, {users.columns('u')} FROM {table} s"
                    f" LEFT JOIN {user_table} u ON u.{user_pk} = %s"
                    " WHERE s.session_key = %s AND s.expire_date > %s"
                )
            self._sql[key] = sql
        return sql

    def decode(self, session_data):
        """Django's decode, remembered for recent texts signed with the current secret keys (see the module
        note): the same data, a fresh dict each time."""
        key = (self.key_salt, session_data)
        secret, fallbacks = settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS
        known = _decoded.get(key)
        if known is not None and known[0] == secret and known[1] == fallbacks:
            return dict(known[2])
        data = super().decode(session_data)
        if data and all(type(v) in _PLAIN for v in data.values()):
            _bounded_put(_decoded, _TEXTS_REMEMBERED, key, (secret, list(fallbacks), dict(data)))
        return data

    def load(self):
        data = super().load()
        if self.session_key is not None:
            _remember(self.session_key, data.get(SESSION_KEY))
        return data
