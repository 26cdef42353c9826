"""Reading rows fast: big batches without per-value converters, and model instances from plain cursor rows."""

from __future__ import annotations

import datetime as dt

import orjson
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import signals
from django.utils.dateparse import parse_datetime


def fast_rows(
    qs, *, json_cols: tuple[int, ...] = (), bool_cols: tuple[int, ...] = (), dt_cols: tuple[int, ...] = ()
) -> list[list]:
    """The rows of a values_list queryset through a plain cursor: Django's SQL, without its per-value
    converters (the slow part of a big export). JSON is decoded with orjson; on SQLite, booleans and
    datetimes are converted as Django would."""
    sql, params = qs.query.sql_with_params()
    conn = connections[qs.db]
    with conn.cursor() as cur:
        cur.execute(sql, params)
        fetched = cur.fetchall()
    sqlite = conn.vendor == "sqlite"
    if not json_cols and not (sqlite and (bool_cols or dt_cols)):
        return fetched
    rows = [list(r) for r in fetched]
    loads = orjson.loads
    for r in rows:
        for i in json_cols:
            v = r[i]
            if v is not None:
                r[i] = [] if v == "[]" else loads(v)
        if sqlite:
            for i in bool_cols:
                if r[i] is not None:
                    r[i] = bool(r[i])
            for i in dt_cols:
                v = parse_datetime(r[i]) if isinstance(r[i], str) else r[i]
                if v is not None and v.tzinfo is None:
                    v = v.replace(tzinfo=dt.UTC)
                r[i] = v
    return rows


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
        signals.pre_save.send(sender=self.model, instance=obj, raw=False, using=db, update_fields=None)
        values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection=connection) for f in self.fields]
        returning = connection.features.can_return_columns_from_insert
        with connection.cursor() as cursor:
            cursor.execute(self.sql + self.returning if returning else self.sql, values)
            if returning:
                pk = cursor.fetchone()[0]
            else:
                pk = connection.ops.last_insert_id(
                    cursor, self.model._meta.db_table, self.model._meta.pk.column
                )
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = db
        signals.post_save.send(
            sender=self.model, instance=obj, created=True, update_fields=None, raw=False, using=db
        )
