"""Reading rows fast: big sets of rows through plain or server-side cursors without Django's per-value
converters (the slow part of a big read)."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager

import psycopg
from django.db import connections
from django.utils.dateparse import parse_datetime
from psycopg import sql as psycopg_sql


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

    On PostgreSQL, outside a caller's transaction, every stream is one query on a connection of its own
    from the pool, read in binary (no text parsing, no per-value converters) as libpq hands it over in
    chunks. The query is sent when the stream is made, so the server sorts every stream's rows at once,
    and then sends them as it makes them, ahead of the reader by what the socket buffers hold: it
    computes the next rows while this process turns the last ones into lines, rather than the two taking
    turns, and memory stays flat (a full socket stops the server). The connections read in REPEATABLE
    READ, READ ONLY transactions that share one snapshot (`pg_export_snapshot`): the streams see one state
    of the database, and what the caller writes meanwhile on its own connection (a job's progress)
    commits as it goes. Inside a caller's transaction (`atomic`, or a test's) the streams are server-side
    cursors in that transaction instead, so they see what it wrote. Elsewhere (SQLite) plain cursors,
    fetched a chunk at a time.
    """

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self.caller = connections[alias]
        self.names = itertools.count()
        self.open: list[Iterator] = []
        self.own: list = []  # (Django connection, psycopg transaction) of each stream's connection
        self.ahead: list[_FirstChunk] = []
        self.snapshot: str | None = None

    def __enter__(self) -> RowStreams:
        self.postgres = self.caller.vendor == "postgresql"
        self.piped = self.postgres and not self.caller.in_atomic_block
        if self.postgres and not self.piped:
            self.caller.ensure_connection()
            self.pg = self.caller.connection
        return self

    def __exit__(self, *exc) -> None:
        # Stop the first-chunk reads still waiting (an export that failed early), close every stream while
        # its transaction is still open (a stream cut short cancels its query), then end the transactions;
        # the connections go back to the pool.
        try:
            for first in self.ahead:
                first.stop()
            for rows in self.open:
                rows.close()
        finally:
            for own, transaction in reversed(self.own):
                try:
                    transaction.__exit__(*exc)
                finally:
                    own.close()
            self.own = []

    def _connection(self, *, index_order: bool = False):
        """A pooled connection of this export's own, in a REPEATABLE READ, READ ONLY transaction on the
        snapshot that the first one took."""
        own = connections.create_connection(self.alias)
        own.ensure_connection()
        pg = own.connection
        transaction = pg.transaction()
        transaction.__enter__()
        self.own.append((own, transaction))
        pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if self.snapshot is None:
            self.snapshot = pg.execute("SELECT pg_export_snapshot()").fetchone()[0]
        else:
            pg.execute(psycopg_sql.SQL("SET TRANSACTION SNAPSHOT {}").format(self.snapshot))
        # JIT compilation costs more than it saves on these queries (past a cost of 500,000, about a million
        # rows, PostgreSQL also inlines and optimises: 0.9 s a query). No parallel workers: each stream's
        # query runs in its connection's process alone, one core of the server per stream, and its CPU is
        # that process's.
        pg.execute("SET LOCAL jit = off")
        pg.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        if index_order:
            pg.execute("SET LOCAL enable_sort = off")
        return pg

    def stream(
        self,
        qs,
        *,
        chunk: int = 5000,
        bool_cols: tuple[int, ...] = (),
        dt_cols: tuple[int, ...] = (),
        index_order: bool = False,
    ) -> Iterator[list]:
        """The rows of the values_list queryset `qs`, `chunk` at a time, as `fast_rows` makes them.

        `index_order`: an index gives the query's order (PostgreSQL, own connection), so its plan should not
        sort: the planner is told not to (`enable_sort` off, for this query alone), and it reads the index
        in order and joins row by row, so the first rows come at once and the rest as the reader takes
        them, instead of after the whole result has been joined and sorted."""
        if self.piped:
            rows = self._piped(qs, chunk, index_order)
        else:
            rows = self._stream(qs, chunk, bool_cols, dt_cols)
        self.open.append(rows)
        return rows

    def _piped(self, qs, chunk: int, index_order: bool) -> Iterator[list]:
        sql, params = qs.query.sql_with_params()
        pg = self._connection(index_order=index_order)
        # A plain psycopg cursor: Django's bind parameters client-side, and those cannot read binary.
        cursor = psycopg.Cursor(pg)
        # Chunks need libpq 17 (psycopg's binary wheels bring their own); before it, a row at a time.
        size = chunk if psycopg.pq.version() >= 170000 else 1
        rows = cursor.stream(sql, params, binary=True, size=size)
        first = _FirstChunk(pg, rows, chunk)
        self.ahead.append(first)
        return self._chunks(cursor, rows, first, chunk)

    @staticmethod
    def _chunks(cursor, rows: Iterator, first: _FirstChunk, chunk: int) -> Iterator[list]:
        with cursor:
            try:
                batch = first.result()
                while batch:
                    yield batch
                    batch = list(itertools.islice(rows, chunk))
            finally:
                first.stop()

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


class _FirstChunk:
    """The first chunk of a stream, read by a thread from the moment the stream is made: the query goes to
    the server at once (libpq sends a query when its rows are first asked for), and the thread waits for
    its first rows (a sort's, the longest wait) while this one goes on. The rest is read by the caller."""

    def __init__(self, pg, rows: Iterator, chunk: int) -> None:
        self.pg = pg
        self.source = rows
        self.rows: list | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, args=(rows, chunk), name="rows-first", daemon=True)
        self.thread.start()

    def _read(self, rows: Iterator, chunk: int) -> None:
        try:
            self.rows = list(itertools.islice(rows, chunk))
        except BaseException as exc:  # handed to the reader by result()
            self.error = exc

    def result(self) -> list:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.rows or []

    def stop(self) -> None:
        """Cancel the query if the first chunk has not come yet (the export is giving up), wait, and close
        the stream (a query still sending is cancelled, and the connection is free for its transaction's
        end)."""
        if self.thread.is_alive():
            self.pg.cancel_safe()
        self.thread.join()
        self.source.close()


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
