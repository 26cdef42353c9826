"""Bulk writes of parsed pairs: items, responses, comparisons, source labels and raw votes.

One batch at a time, inside the caller's transaction. On PostgreSQL the new items, responses and comparisons
are found by key look-ups and written with binary COPY straight into their tables (`_structure_pg`; see
importers/README.md); on SQLite, and for source labels everywhere, the rows go into temporary tables and one
`INSERT … SELECT … ON CONFLICT DO NOTHING` per table moves the new ones in. The unique constraints (item per prompt key, response per item and text key, comparison per pair key,
judgment per comparison and annotator) make a second import of the same rows add nothing, and the first batch
that names a pair fixes its canonical order. Only per-batch maps live in Python, so memory does not grow with
the file.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from psycopg import Copy
from psycopg.copy import LibpqWriter
from psycopg.types.string import BytesBinaryDumper

from annotate.models import Comparison, Judgment, JudgmentRevision
from curation.importers.formats import ANSWER_FIELDS, ParsedPair, flipped
from curation.importers.report import LineError
from projects.models import Annotator, Project

if TYPE_CHECKING:
    from curation.importers.report import ImportReport

IMPORT_LOCK = 0x41524249  # advisory lock class of imports ("ARBI")
JSON_ANSWERS = ("a_harm_categories", "b_harm_categories")


def _keys(keys: Iterable[str]) -> str:
    """Hex keys as one space-separated string for `string_to_array` on the server: one text parameter costs
    the client far less than psycopg's per-element dump of a 10,000-key list."""
    return " ".join(keys)


class SetupError(ValueError):
    """The import cannot start (a clash with existing records); nothing was written."""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _jsonb(value: Any) -> bytes:
    """jsonb's binary wire form: a version byte (1), then the JSON text."""
    return b"\x01" + orjson.dumps(value)


EMPTY_JSONB = _jsonb({})
EMPTY_LIST_JSONB = _jsonb([])


@dataclass(slots=True)
class Batch:
    """A batch of parsed pairs and, for the PostgreSQL path, what its writes need that does not depend on the
    database: built by `Writer.prepare` on the reader thread, so the writing thread spends its time feeding the
    server rather than in Python (the two threads share one GIL)."""

    pairs: list[ParsedPair]
    # prompt key -> (messages, criteria) in jsonb's wire form, from the first line that names the prompt
    items: dict[str, tuple[bytes, bytes]] | None = None
    # (prompt key, text key) -> (text, model name), the first model name seen
    responses: dict[tuple[str, str], tuple[str, str]] | None = None
    # pair key -> the first pair that names it (its order is canonical)
    firsts: dict[str, ParsedPair] | None = None
    # the prompt keys for the look-up, sorted: the index is probed in key order, page after page
    item_keys: str = ""

    def release(self) -> None:
        """Frees what the batch holds (tens of thousands of objects: a pause of milliseconds with the GIL
        held), at a moment the caller picks."""
        self.pairs.clear()
        for part in (self.items, self.responses, self.firsts):
            if part is not None:
                part.clear()


class Writer:
    def __init__(self, *, project: Project, fmt: str, source: str, seed: int, report: ImportReport):
        self.project = project
        self.fmt = fmt
        self.source = source
        self.report = report
        self.rng = random.Random(seed)
        self.pg = connection.vendor == "postgresql"
        self.now = timezone.now()
        self.db_now = connection.ops.adapt_datetimefield_value(self.now)
        self.source_annotator: Annotator | None = None
        self._raw_positions: dict[tuple[str, str], int] = defaultdict(int)
        self._ord = 0
        self._sequences: dict[str, str] = {}
        self.locked_references = False  # PostgreSQL: FK checks by row locks, not per-row triggers (setup)
        self.rejected: list[LineError] = []  # lines that parsed but clash with stored records
        # Set by import_file: the reader thread runs while it is set (`_reader`)
        self.gate: threading.Event | None = None
        self._spent: Batch | None = None  # the previous batch, freed while the server works on the next

    # --- temporary tables ---------------------------------------------------------------------------------
    def setup(self) -> None:
        js = "jsonb" if self.pg else "text"
        tables = {
            "imp_item": f"prompt_key varchar(64), prompt {js}, criteria {js}",
            "imp_resp": "item_id bigint, text_key varchar(64), text text, model_name varchar(200)",
            "imp_cmp": "item_id bigint, a_id bigint, b_id bigint, pair_key varchar(64), random_key double precision,"
            " ord bigint",
            "imp_judg": "comparison_id bigint, preference smallint, choice varchar(3), helpfulness varchar(3),"
            " harmlessness varchar(3), a_safe boolean, b_safe boolean,"
            f" a_harm_categories {js}, b_harm_categories {js}, a_severity varchar(8), b_severity varchar(8),"
            " justification text, time_spent_ms integer, shown_left varchar(1)",
        }
        with connection.cursor() as cur:
            if self.pg:
                # One import per project at a time (see _structure_pg); released at commit or rollback.
                cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [IMPORT_LOCK, self.project.pk])
                self.locked_references = self._can_skip_fk_triggers(cur)
                if self.locked_references:
                    # The project every new row points at stays until this transaction ends.
                    cur.execute(
                        "SELECT 1 FROM annotate_project WHERE id = %s FOR KEY SHARE", [self.project.pk]
                    )
            for name, cols in tables.items():
                cur.execute(f"DROP TABLE IF EXISTS {name}")
                cur.execute(f"CREATE TEMPORARY TABLE {name} ({cols})")
        if self.fmt in ("trl", "hh", "safe-rlhf"):
            annotator, created = Annotator.objects.get_or_create(
                project=self.project,
                name=self.source,
                defaults={"kind": Annotator.Kind.SOURCE, "imported": True},
            )
            if annotator.kind != Annotator.Kind.SOURCE:
                raise SetupError(
                    f"annotator {self.source!r} already exists on this project and is not a source"
                )
            self.source_annotator = annotator

    @staticmethod
    def _can_skip_fk_triggers(cur) -> bool:
        """Whether this role may set `session_replication_role` (a superuser, or PostgreSQL 15+'s
        `GRANT SET ON PARAMETER session_replication_role TO <role>`). Tried in a savepoint and undone: it is only
        switched on around the pair-structure COPYs (see `write`)."""
        try:
            with transaction.atomic():
                cur.execute("SET LOCAL session_replication_role = replica")
                cur.execute("SET LOCAL session_replication_role = origin")
        except DatabaseError:
            return False
        return True

    def teardown(self) -> None:
        with connection.cursor() as cur:
            for name in ("imp_item", "imp_resp", "imp_cmp", "imp_judg"):
                cur.execute(f"DROP TABLE IF EXISTS {name}")

    def _fill(self, cur, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        cur.execute(f"DELETE FROM {table}")
        if self.pg:
            with cur.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", list(rows))

    # --- the pair structure -------------------------------------------------------------------------------
    def prepare(self, pairs: list[ParsedPair]) -> Batch:
        """The database-independent part of a batch's writes (runs on the reader thread; touches nothing
        shared)."""
        if not self.pg or not pairs:
            return Batch(pairs)
        items: dict[str, tuple[bytes, bytes]] = {}
        responses: dict[tuple[str, str], tuple[str, str]] = {}
        firsts: dict[str, ParsedPair] = {}
        for p in pairs:
            pkey = p.pkey
            if pkey not in items:
                items[pkey] = (_jsonb(p.messages), _jsonb(p.criteria) if p.criteria else EMPTY_LIST_JSONB)
            responses.setdefault((pkey, p.a_key), (p.a_text, p.a_model))
            responses.setdefault((pkey, p.b_key), (p.b_text, p.b_model))
            firsts.setdefault(p.pair_key, p)
        return Batch(pairs, items, responses, firsts, _keys(sorted(items)))

    def write(self, batch: Batch) -> None:
        pairs = batch.pairs
        if not pairs:
            return
        labelled = self.fmt != "generic"
        # The COPYs and look-ups use psycopg's cursor directly: its errors reach callers as Django's.
        with self._reader(runs=False), connection.wrap_database_errors, connection.cursor() as cur:
            if self.pg:
                cmap = self._structure_pg(cur, batch, fetch=labelled)
                if self.locked_references:
                    # Triggers back on for everything else: labels, raw votes, whatever the caller does next.
                    cur.execute("SET LOCAL session_replication_role = origin")
            else:
                cmap = self._structure(cur, pairs, fetch=labelled)
            if self.source_annotator is not None:
                self._source_labels(cur, pairs, cmap)
        if self.fmt == "raw":
            self._raw(pairs, cmap)
        if self.pg:
            self._spent = batch

    @contextmanager
    def _reader(self, *, runs: bool) -> Iterator[None]:
        """Turns at the GIL (PostgreSQL): while this thread writes a batch the reader thread waits at the gate
        between lines (`runs=False`), and runs only while this one waits for the server (`runs=True`, nested
        inside). Otherwise the two would take turns at the GIL every switch interval, and the server would wait
        for rows, ids or the next statement meanwhile. The gate goes back as it was when the block ends."""
        gate = self.gate
        if gate is None or not self.pg:  # sqlite3 releases the GIL while a statement runs: no turns there
            yield
            return
        before, after = (gate.set, gate.clear) if runs else (gate.clear, gate.set)
        before()
        try:
            yield
        finally:
            after()

    def _sequence(self, cur, table: str) -> str:
        seq = self._sequences.get(table)
        if seq is None:
            cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            seq = self._sequences[table] = cur.fetchone()[0]
        return seq

    def _ids_sql(self, cur, table: str, n: int) -> tuple[str, list]:
        """A statement drawing `n` ids from the table's sequence as one array (the regclass resolved once,
        not per row as pg_get_serial_sequence() would be)."""
        return (
            "SELECT ARRAY(SELECT nextval(%s::regclass) FROM generate_series(1, %s))",
            [self._sequence(cur, table), n],
        )

    @contextmanager
    def _copy(self, cur, table: str, columns: Sequence[tuple[str, str]]) -> Iterator[Copy]:
        """Binary COPY: (column, type) pairs; no text escaping on either side. A `jsonb` column takes bytes
        already in jsonb's binary form (`_jsonb`), sent as they are. The caller writes the rows; the COPY ends
        (and waits for the server) when the block does."""
        names = ", ".join(c for c, _ in columns)
        # psycopg's C dumper for bytes (the default for bytea handles the DB-API Binary wrapper, in Python).
        cur.cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
        # Every 32 kB block handed to the kernel before the next is formatted (psycopg's default keeps up to
        # 1 MiB in libpq): what is left to send when the rows are done is one block, not a mebibyte to push
        # through many waits for the socket while the reader thread holds the GIL (the server idling between).
        block = cur.cursor.copy(
            f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)",
            writer=LibpqWriter(cur.cursor, flush_threshold=0),
        )
        copy = block.__enter__()
        try:
            copy.set_types(["bytea" if t == "jsonb" else t for _, t in columns])
            yield copy
        except BaseException:
            if not block.__exit__(*sys.exc_info()):
                raise
            return
        with self._reader(runs=True):  # the server works through the rows still in flight
            block.__exit__(None, None, None)

    def _results(self, cur, statements: list[tuple[str, list]]) -> list[list[tuple]]:
        """The rows of each statement, in order. On a cursor of the import's connection with the parameters
        bound by the server and the results in binary: the batch's keys travel as one text parameter, not
        quoted into the SQL and lexed back, and the id arrays come back as binary, not as text to parse on
        both sides (a batch's look-ups: 30 → 22 ms, 7 → 2 ms of the importer's CPU)."""
        out = []
        with psycopg.Cursor(cur.cursor.connection) as raw:
            for sql, params in statements:
                with self._reader(runs=True):
                    raw.execute(sql, params, binary=True)
                out.append(raw.fetchall() if raw.description is not None else [])
        return out

    def _structure_pg(self, cur, batch: Batch, *, fetch: bool) -> dict[str, tuple[int, str]]:
        """PostgreSQL: look up which keys exist, then COPY only the new rows straight into the tables, with
        ids drawn from their sequences. Imports into one project are serialised by an advisory lock
        (taken in setup), so no other import can insert the same keys between the look-up and the COPY.

        The server is kept busy (importers/README.md, "Keeping the server busy"): the batch's maps were built
        on the reader thread (`prepare`); the item look-up and the ids of every table come first, then the
        response and comparison look-ups (only for items found stored), so every id is known before the first
        COPY. Each table's rows are then built while the server is still busy with the previous COPY, and what
        the previous batch held is freed there too, not in a gap between two statements. Ids are drawn for
        every key of the batch; those of keys found stored are left unused (a gap in the sequence, as a
        rolled-back insert leaves).

        Every look-up probes its unique index once per key (`unnest … CROSS JOIN LATERAL`), whatever the
        planner believes: with `= ANY(keys)` it read *all* of the project's items per batch (a bitmap scan on
        `project_id`, the rows this transaction added having no statistics yet), which made a large import
        quadratic (156 ms a batch at 200,000 items)."""
        pid = self.project.pk
        report = self.report
        items, responses, firsts = batch.items, batch.responses, batch.firsts
        assert items is not None and responses is not None and firsts is not None  # noqa: S101 - prepare()
        lock = " FOR KEY SHARE" if self.locked_references else ""
        statements = [
            (
                "SELECT k.key, i.id FROM unnest(string_to_array(%s, ' ')) AS k(key) CROSS JOIN LATERAL"
                f" (SELECT id FROM annotate_item WHERE project_id = %s AND prompt_key = k.key{lock}) i",
                [batch.item_keys, pid],
            ),
            self._ids_sql(cur, "annotate_item", len(items)),
            self._ids_sql(cur, "annotate_response", len(responses)),
        ]
        if fetch:
            statements.append(self._ids_sql(cur, "annotate_comparison", len(firsts)))
        if self.locked_references:
            # Foreign keys by locks instead of triggers: every row these COPYs write points at a row this
            # transaction created (invisible to others, so nobody can delete it) or at one this method
            # found and locked FOR KEY SHARE, as the deferred per-row FK checks would have, but in one
            # statement per table (those checks were a third of the server's time). Only the structure
            # COPYs run with the triggers off: `write` switches them back on right after. No `finally`:
            # after an error the transaction is aborted (a SET would only mask the error) and the import's
            # rollback undoes the LOCAL setting.
            cur.execute("SET LOCAL session_replication_role = replica")
        found, [(item_pool,)], [(resp_pool,)], *rest = self._results(cur, statements)
        cmp_pool = rest[0][0][0] if fetch else None

        item_ids: dict[str, int] = dict(found)
        resp_ids: dict[tuple[str, str], int] = {}
        cmap: dict[str, tuple[int, str]] = {}
        if item_ids:
            # Only an item stored before can have stored responses and comparisons.
            lookups = []
            old_resps = [key for key in responses if key[0] in item_ids]
            if old_resps:
                lookups.append(
                    (
                        "SELECT u.prompt_key, u.text_key, r.id FROM unnest(string_to_array(%s, ' ')::bigint[],"
                        " string_to_array(%s, ' '), string_to_array(%s, ' ')) AS u(item_id, text_key, prompt_key)"
                        " CROSS JOIN LATERAL (SELECT id FROM annotate_response"
                        f" WHERE item_id = u.item_id AND text_key = u.text_key{lock}) r",
                        [
                            " ".join(str(item_ids[k[0]]) for k in old_resps),
                            _keys(k[1] for k in old_resps),
                            _keys(k[0] for k in old_resps),
                        ],
                    )
                )
            old_pairs = [k for k, p in firsts.items() if p.pkey in item_ids]
            if old_pairs:
                lookups.append(
                    (
                        "SELECT k.key, c.id, c.a_key FROM unnest(string_to_array(%s, ' ')::bigint[],"
                        " string_to_array(%s, ' ')) AS k(item_id, key) CROSS JOIN LATERAL"
                        " (SELECT c.id, ra.text_key AS a_key FROM annotate_comparison c"
                        " JOIN annotate_response ra ON ra.id = c.response_a_id"
                        " WHERE c.item_id = k.item_id AND c.pair_key = k.key) c",
                        [" ".join(str(item_ids[firsts[k].pkey]) for k in old_pairs), _keys(old_pairs)],
                    )
                )
            results = self._results(cur, lookups)
            if old_resps:
                resp_ids = {(pkey, k): rid for pkey, k, rid in results.pop(0)}
            if old_pairs:
                cmap = {k: (cid, a_key) for k, cid, a_key in results.pop(0)}

        new_items = [k for k in items if k not in item_ids] if item_ids else list(items)
        item_ids.update(zip(new_items, item_pool[: len(new_items)], strict=True))
        new_resps = [key for key in responses if key not in resp_ids] if resp_ids else list(responses)
        new_resp_ids = resp_pool[: len(new_resps)]
        resp_ids.update(zip(new_resps, new_resp_ids, strict=True))
        new_cmps = [k for k in firsts if k not in cmap] if cmap else list(firsts)
        report.items_created += len(new_items)
        report.responses_created += len(new_resps)
        report.comparisons_created += len(new_cmps)
        if self.fmt == "generic":
            report.duplicates += len(batch.pairs) - len(new_cmps)

        source = self.source[:200]
        now = self.now
        with self._copy(
            cur,
            "annotate_item",
            (
                ("id", "int8"),
                ("project_id", "int8"),
                ("prompt", "jsonb"),
                ("prompt_key", "text"),
                ("source", "text"),
                ("metadata", "jsonb"),
                ("criteria", "jsonb"),
                ("created_at", "timestamptz"),
            ),
        ) as copy:
            for k in new_items:
                prompt, criteria = items[k]
                copy.write_row((item_ids[k], pid, prompt, k, source, EMPTY_JSONB, criteria, now))
            # The server works through the items meanwhile: free the previous batch, build the next COPY's
            # rows, free this one's maps.
            if self._spent is not None:
                self._spent.release()
                self._spent = None
            resp_rows = [
                (i, item_ids[key[0]], text, key[1], model, EMPTY_JSONB)
                for i, key in zip(new_resp_ids, new_resps, strict=True)
                for text, model in (responses[key],)
            ]
            items.clear()
            responses.clear()
        with self._copy(
            cur,
            "annotate_response",
            (
                ("id", "int8"),
                ("item_id", "int8"),
                ("text", "text"),
                ("text_key", "text"),
                ("model_name", "text"),
                ("metadata", "jsonb"),
            ),
        ) as copy:
            for row in resp_rows:
                copy.write_row(row)
            resp_rows.clear()
            # Comparisons: the first arrival of a pair fixes its canonical order. Ids are drawn here only
            # when labels need them; otherwise the column default numbers the rows.
            rng = self.rng.random
            cmp_rows = [
                (
                    pid,
                    item_ids[p.pkey],
                    resp_ids[(p.pkey, p.a_key)],
                    resp_ids[(p.pkey, p.b_key)],
                    k,
                    0,
                    0,
                    rng(),
                    now,
                )
                for k in new_cmps
                for p in (firsts[k],)
            ]
            if cmp_pool is not None:
                ids = cmp_pool[: len(new_cmps)]
                cmap.update((k, (i, firsts[k].a_key)) for k, i in zip(new_cmps, ids, strict=True))
                cmp_rows = [(i, *row) for i, row in zip(ids, cmp_rows, strict=True)]
        columns = (
            ("project_id", "int8"),
            ("item_id", "int8"),
            ("response_a_id", "int8"),
            ("response_b_id", "int8"),
            ("pair_key", "text"),
            ("extra_k", "int2"),
            ("crowd_judgments", "int4"),
            ("random_key", "float8"),
            ("created_at", "timestamptz"),
        )
        with self._copy(
            cur, "annotate_comparison", (("id", "int8"), *columns) if cmp_pool is not None else columns
        ) as copy:
            for row in cmp_rows:
                copy.write_row(row)
            cmp_rows.clear()
            item_ids.clear()
            resp_ids.clear()
        return cmap

    def _structure(self, cur, pairs: list[ParsedPair], *, fetch: bool) -> dict[str, tuple[int, str]]:
        pid = self.project.pk
        report = self.report
        # Items: the first line that names a prompt gives its messages and criteria.
        items: dict[str, ParsedPair] = {}
        for p in pairs:
            items.setdefault(p.pkey, p)
        self._fill(
            cur,
            "imp_item",
            ("prompt_key", "prompt", "criteria"),
            ((k, _json(p.messages), _json(p.criteria or [])) for k, p in items.items()),
        )
        cur.execute(
            "INSERT INTO annotate_item (project_id, prompt, prompt_key, source, metadata, criteria, created_at)"
            " SELECT %s, t.prompt, t.prompt_key, %s, '{}', t.criteria, %s FROM imp_item t WHERE true"
            " ON CONFLICT (project_id, prompt_key) DO NOTHING RETURNING id, prompt_key",
            [pid, self.source[:200], self.db_now],
        )
        item_ids = {k: i for i, k in cur.fetchall()}
        report.items_created += len(item_ids)
        if len(item_ids) < len(items):
            cur.execute(
                "SELECT i.id, i.prompt_key FROM annotate_item i, imp_item t"
                " WHERE i.project_id = %s AND i.prompt_key = t.prompt_key",
                [pid],
            )
            item_ids = {k: i for i, k in cur.fetchall()}

        # Responses: unique per item and exact text; the first model name seen is kept.
        responses: dict[tuple[int, str], tuple[str, str]] = {}
        for p in pairs:
            iid = item_ids[p.pkey]
            responses.setdefault((iid, p.a_key), (p.a_text, p.a_model))
            responses.setdefault((iid, p.b_key), (p.b_text, p.b_model))
        self._fill(
            cur,
            "imp_resp",
            ("item_id", "text_key", "text", "model_name"),
            ((iid, k, text, model) for (iid, k), (text, model) in responses.items()),
        )
        cur.execute(
            "INSERT INTO annotate_response (item_id, text, text_key, model_name, metadata)"
            " SELECT t.item_id, t.text, t.text_key, t.model_name, '{}' FROM imp_resp t WHERE true"
            " ON CONFLICT (item_id, text_key) DO NOTHING RETURNING id, item_id, text_key"
        )
        resp_ids = {(iid, k): rid for rid, iid, k in cur.fetchall()}
        report.responses_created += len(resp_ids)
        if len(resp_ids) < len(responses):
            cur.execute(
                "SELECT r.id, r.item_id, r.text_key FROM annotate_response r, imp_resp t"
                " WHERE r.item_id = t.item_id AND r.text_key = t.text_key"
            )
            resp_ids = {(iid, k): rid for rid, iid, k in cur.fetchall()}

        # Comparisons: the first arrival of a pair fixes its canonical order.
        comparisons: dict[str, tuple[int, int, int]] = {}
        for p in pairs:
            if p.pair_key not in comparisons:
                iid = item_ids[p.pkey]
                comparisons[p.pair_key] = (iid, resp_ids[(iid, p.a_key)], resp_ids[(iid, p.b_key)])
        rows = []
        for k, (iid, a, b) in comparisons.items():
            self._ord += 1
            rows.append((iid, a, b, k, self.rng.random(), self._ord))
        self._fill(cur, "imp_cmp", ("item_id", "a_id", "b_id", "pair_key", "random_key", "ord"), rows)
        cur.execute(
            "INSERT INTO annotate_comparison (project_id, item_id, response_a_id, response_b_id, pair_key,"
            " extra_k, crowd_judgments, random_key, created_at)"
            " SELECT %s, t.item_id, t.a_id, t.b_id, t.pair_key, 0, 0, t.random_key, %s FROM imp_cmp t WHERE true"
            " ORDER BY t.ord ON CONFLICT (item_id, pair_key) DO NOTHING",
            [pid, self.db_now],
        )
        created = cur.rowcount
        report.comparisons_created += created
        if self.fmt == "generic":
            report.duplicates += len(pairs) - created
        if not fetch:
            return {}
        cur.execute(
            "SELECT c.pair_key, c.id, ra.text_key FROM annotate_comparison c, imp_cmp t, annotate_response ra"
            " WHERE c.item_id = t.item_id AND c.pair_key = t.pair_key AND ra.id = c.response_a_id"
        )
        return {k: (cid, a_key) for k, cid, a_key in cur.fetchall()}

    # --- source labels (trl, hh, safe-rlhf) ----------------------------------------------------------------
    def _source_labels(self, cur, pairs: list[ParsedPair], cmap: dict[str, tuple[int, str]]) -> None:
        rows: dict[int, tuple] = {}
        for p in pairs:
            cid, canon_a = cmap[p.pair_key]
            if cid in rows:
                continue
            label = p.label if p.a_key == canon_a else flipped(p.label)
            rows[cid] = (
                cid,
                *(_json(label[f]) if f in JSON_ANSWERS else label[f] for f in ANSWER_FIELDS),
            )
        self._fill(cur, "imp_judg", ("comparison_id", *ANSWER_FIELDS), rows.values())
        fields = ", ".join(ANSWER_FIELDS)
        t_fields = ", ".join(f"t.{f}" for f in ANSWER_FIELDS)
        j_fields = ", ".join(f"j.{f}" for f in ANSWER_FIELDS)
        aid = self.source_annotator.pk
        cur.execute(
            "INSERT INTO annotate_judgment (project_id, comparison_id, annotator_id, is_source, imported, is_gold,"
            f" revision_count, created_at, updated_at, {fields})"
            f" SELECT %s, t.comparison_id, %s, true, true, false, 1, %s, %s, {t_fields} FROM imp_judg t WHERE true"
            " ON CONFLICT (comparison_id, annotator_id) DO NOTHING",
            [self.project.pk, aid, self.db_now, self.db_now],
        )
        created = cur.rowcount
        self.report.judgments_created += created
        self.report.duplicates += len(pairs) - created
        cur.execute(
            f"INSERT INTO annotate_judgmentrevision (judgment_id, number, created_at, {fields})"
            f" SELECT j.id, 1, j.created_at, {j_fields} FROM annotate_judgment j, imp_judg t"
            " WHERE j.annotator_id = %s AND j.comparison_id = t.comparison_id"
            " AND NOT EXISTS (SELECT 1 FROM annotate_judgmentrevision r WHERE r.judgment_id = j.id)",
            [aid],
        )

    # --- raw votes ------------------------------------------------------------------------------------------
    def _raw(self, pairs: list[ParsedPair], cmap: dict[str, tuple[int, str]]) -> None:
        report = self.report
        names = {p.annotator for p in pairs}
        annotators = {a.name: a for a in Annotator.objects.filter(project=self.project, name__in=names)}
        missing = [
            Annotator(project=self.project, name=n, kind=Annotator.Kind.CROWD, imported=True)
            for n in names - annotators.keys()
        ]
        if missing:
            Annotator.objects.bulk_create(missing, ignore_conflicts=True)
            annotators = {a.name: a for a in Annotator.objects.filter(project=self.project, name__in=names)}
        subs = [p.submission_id for p in pairs if p.submission_id]
        known_subs: dict[str, tuple[int, int]] = {
            s: (c, a)
            for s, c, a in JudgmentRevision.objects.filter(submission_id__in=subs).values_list(
                "submission_id", "judgment__comparison_id", "judgment__annotator_id"
            )
        }
        cids = {cmap[p.pair_key][0] for p in pairs}
        aids = {a.pk for a in annotators.values()}
        judgments: dict[tuple[int, int], Judgment] = {
            (j.comparison_id, j.annotator_id): j
            for j in Judgment.objects.filter(
                project=self.project, comparison_id__in=cids, annotator_id__in=aids
            )
        }
        numbers = set(
            JudgmentRevision.objects.filter(judgment__in=list(judgments.values())).values_list(
                "judgment_id", "number"
            )
        )
        new_judgments: dict[tuple[int, int], Judgment] = {}
        pending: list[tuple[tuple[int, int], int, ParsedPair, dict]] = []
        taken: set[tuple[tuple[int, int], int]] = set()
        for p in pairs:
            annotator = annotators[p.annotator]
            if annotator.kind != Annotator.Kind.CROWD or annotator.user_id is not None:
                self.rejected.append(
                    LineError(
                        p.line, "annotator", f"{p.annotator!r} names a login or a source on this project"
                    )
                )
                continue
            cid, canon_a = cmap[p.pair_key]
            key = (cid, annotator.pk)
            if p.revision is not None:
                number = p.revision
            else:  # without a number, a row is the next revision of that annotator's answer in this file
                self._raw_positions[(p.annotator, p.pair_key)] += 1
                number = self._raw_positions[(p.annotator, p.pair_key)]
            if p.submission_id:
                if p.submission_id in known_subs:
                    if known_subs[p.submission_id] != key:
                        self.rejected.append(
                            LineError(p.line, "submission_id", "already used by another judgment")
                        )
                    else:
                        report.duplicates += 1
                    continue
                known_subs[p.submission_id] = key
            existing = judgments.get(key)
            if (existing is not None and (existing.pk, number) in numbers) or (key, number) in taken:
                report.duplicates += 1
                continue
            taken.add((key, number))
            label = p.label if p.a_key == canon_a else flipped(p.label)
            if existing is None and key not in new_judgments:
                new_judgments[key] = Judgment(
                    project=self.project,
                    comparison_id=cid,
                    annotator_id=annotator.pk,
                    imported=True,
                    created_at=p.created_at or self.now,
                    updated_at=p.created_at or self.now,
                    **label,
                )
            pending.append((key, number, p, label))
        if new_judgments:
            Judgment.objects.bulk_create(new_judgments.values())
            judgments.update(new_judgments)
            report.judgments_created += len(new_judgments)
        revisions = [
            JudgmentRevision(
                judgment_id=judgments[key].pk,
                number=number,
                submission_id=p.submission_id,
                created_at=p.created_at or self.now,
                **label,
            )
            for key, number, p, label in pending
        ]
        JudgmentRevision.objects.bulk_create(revisions)
        report.revisions_created += len(revisions)
        self._mirror_latest({r.judgment_id for r in revisions})
        self._count_crowd({key[0] for key, *_ in pending})

    def _mirror_latest(self, judgment_ids: set[int]) -> None:
        """Judgment fields = its highest-numbered revision; created_at = the earliest revision's."""
        if not judgment_ids:
            return
        latest: dict[int, JudgmentRevision] = {}
        counts: dict[int, int] = defaultdict(int)
        first: dict[int, Any] = {}
        for rev in JudgmentRevision.objects.filter(judgment_id__in=judgment_ids).order_by(
            "judgment_id", "number"
        ):
            latest[rev.judgment_id] = rev
            counts[rev.judgment_id] += 1
            first.setdefault(rev.judgment_id, rev.created_at)
        updated = []
        for j in Judgment.objects.filter(pk__in=judgment_ids):
            rev = latest[j.pk]
            for f in ANSWER_FIELDS:
                setattr(j, f, getattr(rev, f))
            j.revision_count = counts[j.pk]
            j.created_at = min(first[j.pk], rev.created_at)
            j.updated_at = rev.created_at
            updated.append(j)
        Judgment.objects.bulk_update(updated, [*ANSWER_FIELDS, "revision_count", "created_at", "updated_at"])

    def _count_crowd(self, comparison_ids: set[int]) -> None:
        crowd = (
            Judgment.objects.filter(comparison_id=OuterRef("pk"), is_source=False, is_gold=False)
            .order_by()
            .values("comparison_id")
            .annotate(n=Count("id"))
            .values("n")
        )
        Comparison.objects.filter(pk__in=comparison_ids).update(
            crowd_judgments=Coalesce(Subquery(crowd), Value(0))
        )
