"""Django's database sessions, read with one plain SQL statement instead of an ORM query.

Every authenticated request loads its session first. Django's `db` backend does it with
`Session.objects.get(session_key=…, expire_date__gt=now)`, whose compilation cost about three times the CPU of
the same SELECT through a cursor (measured: 340 µs against 116 µs a request). This store is Django's `db`
store with only that read replaced: same table, same encoding, same expiry rule, so sessions written by either
are read by both, and creating, rotating (login), deleting (logout) and clearing sessions are Django's own.
The database stays the only place a session lives, so logging out ends it even while Redis is down (unlike
`cached_db`, whose copy in the cache would outlive a delete that could not reach the cache).
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone

from annotate.fastrows import ModelRows, hot_cursor


class SessionStore(db.SessionStore):
    _rows: ModelRows | None = None

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
        table = connection.ops.quote_name(self.model._meta.db_table)
        sql = f"SELECT {rows.columns('s')} FROM {table} s WHERE s.session_key = %s AND s.expire_date > %s"
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with hot_cursor(connection) as cursor:
            cursor.execute(sql, [self.session_key, now])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return rows.load(row, connection, db=using)
