"""Reading big batches of rows fast: Django's SQL through a plain cursor, without per-value converters."""

from __future__ import annotations

import datetime as dt

import orjson
from django.db import connections
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
