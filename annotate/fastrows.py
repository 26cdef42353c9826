"""Reading big sets of rows fast: Django's SQL through plain or server-side cursors, without its per-value
converters (the slow part of a big read)."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Iterator
from contextlib import AbstractContextManager

from django.db import connections
from django.utils.dateparse import parse_datetime


def _convert(fetched: list, *, bool_cols: tuple[int, ...], dt_cols: tuple[int, ...]) -> list:
    """SQLite's rows with booleans and datetimes converted as Django would (PostgreSQL's driver hands them
    over typed already)."""
    if not (bool_cols or dt_cols):
        return fetched
    rows = [list(r) for r in fetched]
    for r in rows:
        for i in bool_cols:
            if r[i] is not None:
                r[i] = bool(r[i])
        for i in dt_cols:
            v = parse_datetime(r[i]) if isinstance(r[i], str) else r[i]
            if v is not None and v.tzinfo is None:
                v = v.replace(tzinfo=dt.UTC)
            r[i] = v
    return rows


def fast_rows(qs, *, bool_cols: tuple[int, ...] = (), dt_cols: tuple[int, ...] = ()) -> list:
    """The rows of a values_list queryset through a plain cursor: Django's SQL, without its per-value
    converters (JSON stays text). On SQLite, booleans and datetimes are converted as Django would."""
    sql, params = qs.query.sql_with_params()
    conn = connections[qs.db]
    with conn.cursor() as cur:
        cur.execute(sql, params)
        fetched = cur.fetchall()
    return _convert(fetched, bool_cols=bool_cols, dt_cols=dt_cols) if conn.vendor == "sqlite" else fetched


class RowStreams(AbstractContextManager):
    """Several querysets read side by side, each a chunk at a time, in bounded memory.

    On PostgreSQL every stream is a server-side cursor read in binary (no text parsing, no per-value
    converters), all in one REPEATABLE READ, READ ONLY transaction on a connection of their own from the
    pool: the streams see one state of the database, and what the caller writes meanwhile on its own
    connection (a job's progress) commits as it goes. Inside a caller's transaction (`atomic`, or a test's)
    they read in that transaction instead, so they see what it wrote. Elsewhere (SQLite) plain cursors,
    fetched a chunk at a time.
    """

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self.caller = connections[alias]
        self.own = None
        self.names = itertools.count()
        self.open: list[Iterator] = []

    def __enter__(self) -> RowStreams:
        self.postgres = self.caller.vendor == "postgresql"
        if self.postgres:
            if self.caller.in_atomic_block:
                self.caller.ensure_connection()
                self.pg = self.caller.connection
            else:
                self.own = connections.create_connection(self.alias)
                self.own.ensure_connection()
                self.pg = self.own.connection
                self.transaction = self.pg.transaction()
                self.transaction.__enter__()
                self.pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # Every row is read: plan for the whole result, not for the first rows as cursors do.
                self.pg.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        return self

    def __exit__(self, *exc) -> None:
        # Close every cursor while its transaction is still ours (the connection goes back to the pool next).
        for rows in self.open:
            rows.close()
        if self.own is not None:
            try:
                self.transaction.__exit__(*exc)
            finally:
                self.own.close()
                self.own = None

    def stream(
        self, qs, *, chunk: int = 5000, bool_cols: tuple[int, ...] = (), dt_cols: tuple[int, ...] = ()
    ) -> Iterator[list]:
        """The rows of the values_list queryset `qs`, `chunk` at a time, as `fast_rows` makes them."""
        rows = self._stream(qs, chunk, bool_cols, dt_cols)
        self.open.append(rows)
        return rows

    def _stream(self, qs, chunk: int, bool_cols: tuple[int, ...], dt_cols: tuple[int, ...]) -> Iterator[list]:
        sql, params = qs.query.sql_with_params()
        if self.postgres:
            cursor = self.pg.cursor(name=f"rows_{next(self.names)}", binary=True)
        else:
            cursor = self.caller.cursor()
        with cursor as cur:
            cur.execute(sql, params)
            while rows := cur.fetchmany(chunk):
                yield rows if self.postgres else _convert(rows, bool_cols=bool_cols, dt_cols=dt_cols)


class ByComparison:
    """A stream of row chunks sorted by comparison id (column 0), handed out a pair batch at a time."""

    def __init__(self, chunks: Iterator[list]) -> None:
        self.chunks = chunks
        self.pending: list = []

    def upto(self, last: int) -> dict[int, list]:
        """{comparison id: its rows, in stream order} of every remaining row whose comparison id is <= last."""
        out: dict[int, list] = {}
        while True:
            if not self.pending:
                self.pending = next(self.chunks, [])
                if not self.pending:
                    return out
            rows = self.pending
            cut = bisect.bisect_right(rows, last, key=_first)
            taken, self.pending = (rows, []) if cut == len(rows) else (rows[:cut], rows[cut:])
            for r in taken:
                out.setdefault(r[0], []).append(r)
            if self.pending:
                return out


def _first(row) -> int:
    return row[0]
