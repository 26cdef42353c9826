"""Model instances from plain cursor rows, and their inserts, for hot paths.

`hot_cursor(connection)` is the cursor for the few statements every workbench request runs (session, user,
project, claim, submit). On PostgreSQL it binds parameters on the server and prepares each statement the first
time a connection runs it; from then on psycopg sends only the statement's name and the values: PostgreSQL
neither parses nor plans it again, and psycopg neither quotes the values into the SQL text (in Python) nor
converts the query. Django's default cursor binds on the client and prepares nothing (Django also turns psycopg's
preparing off, `prepare_threshold=None`, for the sake of transaction-pooling proxies), which the rest of
Arbiter keeps: server-side binding caps a statement at 65,535 parameters, and some bulk deletes pass more.
The cursor is Django's wrapper (execute wrappers, debug logging, error translation) around a subclass of
Django's own server-binding psycopg cursor. Elsewhere (SQLite) it is `connection.cursor()`. Hot statements only,
each with a fixed, small number of parameters: a prepared statement stays on its pooled connection (psycopg
keeps the 100 most used per connection and deallocates the rest). Behind a proxy that pools transactions
(PgBouncer before 1.21) prepared statements need its prepared-statement support.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS
from django.db.models import signals


def hot_cursor(connection):
    """A cursor whose statements are prepared on PostgreSQL (see the module note)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    pg = connection.connection
    if pg.prepare_threshold is None:
        # Django turns preparing off (None), which psycopg honours even for `prepare=True`. A threshold no
        # count reaches prepares what is asked for and nothing else: only server-binding cursors prepare, and
        # Django's cursors bind on the client.
        pg.prepare_threshold = _NEVER_BY_COUNT
    previous = pg.cursor_factory
    pg.cursor_factory = _preparing_cursor_class()  # this thread's connection: nothing else uses it meanwhile
    try:
        return connection.cursor()
    finally:
        pg.cursor_factory = previous


_NEVER_BY_COUNT = 2**62
_PreparingCursor = None


def _preparing_cursor_class():
    global _PreparingCursor
    if _PreparingCursor is None:
        from django.db.backends.postgresql.base import ServerBindingCursor

        class PreparingCursor(ServerBindingCursor):
            """Django's server-binding cursor, each statement prepared on its first run."""

            def execute(self, query, params=None, *, prepare=True, binary=None):
                return super().execute(query, params, prepare=prepare, binary=binary)

            def _send_query_prepared(self, name, pgq, **kwargs):
                # psycopg keeps the statement sent (`_query`) on every path but this one; Django's query log
                # (DEBUG, CaptureQueriesContext) reads its text from there.
                self._query = pgq
                return super()._send_query_prepared(name, pgq, **kwargs)

        _PreparingCursor = PreparingCursor
    return _PreparingCursor


class ModelRows:
    """Model instances from a plain cursor's rows, for hot paths where compiling the ORM query costs more
    than running it. `columns(alias)` is the select list; `load(row, connection)` applies the same per-field
    converters Django's compiler would (JSON, SQLite booleans and datetimes) and returns the instance, as if
    the ORM had loaded those fields (the others are deferred)."""

    def __init__(self, model, fields: tuple[str, ...] | None = None):
        self.model = model
        concrete = model._meta.concrete_fields
        self.fields = [f for f in concrete if fields is None or f.name in fields or f.attname in fields]
        self.attnames = [f.attname for f in self.fields]
        self._converters: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def columns(self, alias: str) -> str:
        return ", ".join(f'{alias}."{f.column}"' for f in self.fields)

    def _converters_for(self, connection) -> list:
        found = self._converters.get(connection.vendor)
        if found is None:
            found = []
            for i, field in enumerate(self.fields):
                col = field.get_col(self.model._meta.db_table)
                fns = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if fns:
                    found.append((i, col, fns))
            self._converters[connection.vendor] = found
        return found

    def load(self, row, connection, *, db: str = DEFAULT_DB_ALIAS):
        values = list(row)
        for i, col, fns in self._converters_for(connection):
            for fn in fns:
                values[i] = fn(values[i], col, connection)
        return self.model.from_db(db, self.attnames, values)


class ModelInsert:
    """`INSERT … RETURNING id` of one model instance through a plain cursor, for hot paths: the statement is
    built once, and each value goes through its field's `pre_save` and `get_db_prep_save` as `Model.save()`
    does. `pre_save` / `post_save` are sent as `save()` sends them (a no-op while nothing listens)."""

    def __init__(self, model):
        self.model = model
        meta = model._meta
        self.fields = [f for f in meta.concrete_fields if not f.primary_key]
        columns = ", ".join(f'"{f.column}"' for f in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        self.sql = f'INSERT INTO "{meta.db_table}" ({columns}) VALUES ({placeholders})'
        self.returning = f' RETURNING "{meta.pk.column}"'

    def insert(self, obj, connection, *, db: str = DEFAULT_DB_ALIAS) -> None:
        """Insert `obj` (its primary key unset) and give it the new primary key."""
        values = self.prepare(obj, connection, db=db)
        returning = connection.features.can_return_columns_from_insert
        with hot_cursor(connection) as cursor:
            cursor.execute(self.sql + self.returning if returning else self.sql, values)
            if returning:
                pk = cursor.fetchone()[0]
            else:
                pk = connection.ops.last_insert_id(
                    cursor, self.model._meta.db_table, self.model._meta.pk.column
                )
        self.inserted(obj, pk, db=db)

    def prepare(self, obj, connection, *, db: str = DEFAULT_DB_ALIAS) -> list:
        """`pre_save` sent and the values of `self.fields`, as `save()` prepares them (for a caller that runs
        the INSERT itself, then calls `inserted`)."""
        signals.pre_save.send(sender=self.model, instance=obj, raw=False, using=db, update_fields=None)
        return [f.get_db_prep_save(f.pre_save(obj, add=True), connection=connection) for f in self.fields]

    def inserted(self, obj, pk, *, db: str = DEFAULT_DB_ALIAS) -> None:
        """`obj` is stored with primary key `pk`: its state as after `save()`, and `post_save` sent."""
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = db
        signals.post_save.send(
            sender=self.model, instance=obj, created=True, update_fields=None, raw=False, using=db
        )
