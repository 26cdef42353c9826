"""Set-based writes of parsed pairs: items, responses, comparisons, source labels and raw votes.

One batch at a time, on the import's cursor and inside its transaction. Each table's new rows are COPYed
(binary) into a temporary table, then one `INSERT … SELECT … ON CONFLICT … DO NOTHING RETURNING` moves them
into the real table and hands back the ids of the rows it made; only rows that already existed (a re-import,
a later file naming stored prompts) are looked up, each by one probe of its table's unique index. The unique
constraints (item per prompt key, response per item and text key, comparison per item and pair key, judgment
per comparison and annotator, revision per judgment and number) make a second import of the same rows add
nothing, and the first batch that names a pair fixes its canonical order. Raw votes go the same way, and the
judgments mirror their latest revision through one `UPDATE … FROM`. A batch's last statements are sent in
psycopg's pipeline mode and run while the next batch is read (`_send`, `sync`). Only per-batch maps live in
Python, so memory does not grow with the file. See importers/README.md.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection
from django.db.models import Count, Max
from django.utils import timezone
from psycopg.types.json import set_json_dumps

from annotate.models import Gold, Item, JudgmentRevision, Ranking, RankingRevision, Response
from annotate.ranking_services import write_implied_judgments
from curation.importers.formats import ANSWER_FIELDS, ParsedPair, ParsedRanking, flipped, flipped_gold
from curation.importers.report import LineError
from projects.models import Annotator, Project

if TYPE_CHECKING:
    from curation.importers.report import ImportReport

IMPORT_LOCK = 0x41524249  # advisory lock class of imports ("ARBI")

# The answer columns of a judgment and of a revision, with their types for the binary COPYs.
ANSWER_TYPES = (
    ("preference", "int2"),
    ("choice", "text"),
    ("helpfulness", "text"),
    ("harmlessness", "text"),
    ("a_safe", "bool"),
    ("b_safe", "bool"),
    ("a_harm_categories", "jsonb"),
    ("b_harm_categories", "jsonb"),
    ("a_severity", "text"),
    ("b_severity", "text"),
    ("justification", "text"),
    ("time_spent_ms", "int4"),
    ("shown_left", "text"),
)
assert tuple(name for name, _ in ANSWER_TYPES) == ANSWER_FIELDS  # noqa: S101 - one list, two uses

SQL_TYPES = {"int2": "smallint", "int4": "integer", "int8": "bigint", "float8": "double precision"}

# Temporary tables, one per target table: (column, type) in COPY order.
STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "imp_item": (("prompt_key", "text"), ("prompt", "jsonb"), ("criteria", "jsonb")),
    "imp_resp": (
        ("item_id", "int8"),
        ("text_key", "text"),
        ("text", "text"),
        ("model_name", "text"),
        ("fresh", "bool"),
    ),
    "imp_cmp": (
        ("ord", "int4"),
        ("item_id", "int8"),
        ("fresh", "bool"),
        ("a_id", "int8"),
        ("b_id", "int8"),
        ("a_key", "text"),
        ("b_key", "text"),
        ("pair_key", "text"),
        ("random_key", "float8"),
    ),
    "imp_label": (("comparison_id", "int8"), *ANSWER_TYPES, ("margin", "float8")),
    "imp_vote": (
        ("ord", "int4"),
        ("comparison_id", "int8"),
        ("annotator_id", "int8"),
        ("number", "int4"),
        ("submission_id", "text"),
        ("created_at", "timestamptz"),
        *ANSWER_TYPES,
    ),
    "imp_counted": (("comparison_id", "int8"),),
}

FIELDS = ", ".join(ANSWER_FIELDS)

# New comparisons from imp_cmp; {a} and {b}: the SQL of the responses' ids.
COMPARISONS = (
    "INSERT INTO annotate_comparison (project_id, item_id, response_a_id, response_b_id, pair_key, extra_k,"
    " crowd_judgments, random_key, created_at) SELECT %s, t.item_id, {a}, {b}, t.pair_key, 0, 0, t.random_key, %s"
    " FROM imp_cmp t"
)
ON_CONFLICT_PAIR = " ON CONFLICT (item_id, pair_key) DO NOTHING"


def _fields(alias: str) -> str:
    return ", ".join(f"{alias}.{f}" for f in ANSWER_FIELDS)


class SetupError(ValueError):
    """The import cannot start (a clash with existing records); nothing was written."""


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


class Writer:
    """Writes batches of parsed pairs through `cur` (a cursor of Django's connection, inside the import's
    transaction)."""

    def __init__(
        self,
        cur,
        *,
        project: Project,
        fmt: str,
        source: str,
        seed: int,
        report: ImportReport,
        tail: ExitStack,
        progress: Callable[[float], None] | None = None,
    ):
        self.cur = cur
        self.project = project
        self.fmt = fmt
        self.source = source
        self.report = report
        self.rng = random.Random(seed)
        self.now = timezone.now()
        self.source_annotator: Annotator | None = None
        self._raw_positions: dict[tuple[str, str], int] = defaultdict(int)
        self._ord = 0
        self.rejected: list[LineError] = []  # lines that parsed but clash with stored records
        # The batch's last statements run on the server while the next batch is read (see `_send`); `tail`
        # holds the pipeline until `sync`, and the caller's `with` closes it if the import stops on an error.
        self._tail = tail
        self._pending: list[tuple[Any, Callable[[Any], None]]] = []
        self._stored_judgments: set[int] = set()
        self.progress = progress
        self._fraction: float | None = None  # of the file, once the batch in flight is written

    # --- the import's setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        cur = self.cur
        # One import per project at a time: the look-ups of one batch see the rows of every import before
        # it; released at commit or rollback.
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [IMPORT_LOCK, self.project.pk])
        # A lost import is simply re-run (it is idempotent): no need to wait for the WAL flush at commit.
        cur.execute("SET LOCAL synchronous_commit = off")
        # The statements probe a unique index once per key; their cost estimates (no statistics yet for the
        # rows this transaction adds) would otherwise buy a JIT compile per batch.
        cur.execute("SET LOCAL jit = off")
        # Foreign keys are checked as each statement ends, not all at the commit: the rows they look at are
        # the batch's, still in the server's cache, and an error names the batch. (`teardown` sets them back.)
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # Rows over ~2 kB are compressed as they are stored: lz4 where the server was built with it (readers
        # need nothing), about five times cheaper for the server than the default pglz.
        cur.execute(
            "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings"
            " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
        # jsonb values of the COPYs are serialised by orjson (this cursor only).
        set_json_dumps(_dumps, context=cur)
        for name, columns in STAGES.items():
            cols = ", ".join(f"{c} {SQL_TYPES.get(t, t)}" for c, t in columns)
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE TEMPORARY TABLE {name} ({cols}) ON COMMIT DROP")
        cur.execute("ALTER TABLE imp_counted ADD PRIMARY KEY (comparison_id)")
        if self.fmt in ("trl", "hh", "safe-rlhf"):
            annotator, _ = Annotator.objects.get_or_create(
                project=self.project,
                name=self.source,
                defaults={"kind": Annotator.Kind.SOURCE, "imported": True},
            )
            if annotator.kind != Annotator.Kind.SOURCE:
                raise SetupError(
                    f"annotator {self.source!r} already exists on this project and is not a source"
                )
            self.source_annotator = annotator

    def teardown(self) -> None:
        """Drops the temporary tables now (they would go at commit), so that a caller's own transaction can
        run another import, and puts the foreign-key checks back to the end of the transaction, as Django
        declares them."""
        self.cur.execute(f"DROP TABLE IF EXISTS {', '.join(STAGES)}")
        self.cur.execute("SET CONSTRAINTS ALL DEFERRED")

    def _stage(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        """Empty the temporary table and COPY `rows` into it (binary, every column's type declared)."""
        columns = STAGES[table]
        cur = self.cur
        cur.execute(f"TRUNCATE {table}")
        with (
            connection.wrap_database_errors,
            cur.copy(f"COPY {table} ({', '.join(c for c, _ in columns)}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types([t for _, t in columns])
            for row in rows:
                copy.write_row(row)

    def _rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        self.cur.execute(sql, params)
        return self.cur.fetchall()

    def _send(self, sql: str, params: Sequence[Any] | None, done: Callable[[Any], None]) -> None:
        """Send a statement without waiting for it: the first one of a batch puts the connection in pipeline
        mode (psycopg's `Connection.pipeline()`), so the server runs the batch's last statements while the
        importer reads and checks the next batch. `done(cursor)` takes the statement's count or rows once
        `sync` has waited for it."""
        conn = self.cur.connection  # the psycopg connection under Django's
        if not self._pending:
            self._tail.enter_context(conn.pipeline())
        cur = conn.cursor()
        with connection.wrap_database_errors:
            cur.execute(sql, params)
        self._pending.append((cur, done))

    def sync(self) -> None:
        """Wait for the statements `_send` left running (leaving pipeline mode), then take their results.
        Called before anything else uses the connection: the next batch, the end of the import, or its
        failure."""
        pending, self._pending = self._pending, []
        if pending:
            with connection.wrap_database_errors:
                self._tail.close()
            for cur, done in pending:
                done(cur)
                cur.close()
        if self._stored_judgments:
            self._mirror(sorted(self._stored_judgments))
            self._stored_judgments.clear()
        if self._fraction is not None and self.progress is not None:
            self.progress(self._fraction)  # not earlier: the callback may use the connection
        self._fraction = None

    # --- a batch ------------------------------------------------------------------------------------------
    def write(self, pairs: list[ParsedPair], fraction: float) -> None:
        """Write one batch, which ends at `fraction` of the file (reported as progress once written). Its last
        statements may still be running when this returns: `sync` waits."""
        self.sync()
        self._fraction = fraction
        if not pairs:
            return
        cmap = self._structure(pairs, fetch=self.fmt != "generic")
        if self.source_annotator is not None:
            self._source_labels(pairs, cmap)
        elif self.fmt == "raw":
            # Rankings first: their writes are the ORM's, which must not meet the pipeline `_raw` opens.
            self._rankings([p for p in pairs if p.ranking is not None])
            self._raw([p for p in pairs if p.annotator is not None], cmap)

    def _structure(self, pairs: list[ParsedPair], *, fetch: bool) -> dict[str, tuple[int, str]]:
        """Items, responses and comparisons of the batch; with `fetch`, every pair's comparison id and
        canonical A."""
        pid = self.project.pk
        report = self.report
        lock = " FOR KEY SHARE"  # a stored row the new rows point at stays until the import commits

        # Items: the first line that names a prompt gives its messages and criteria.
        items: dict[str, ParsedPair] = {}
        for p in pairs:
            if p.pkey not in items:
                items[p.pkey] = p
        self._stage("imp_item", ((k, p.messages, p.criteria or []) for k, p in items.items()))
        item_ids = dict(
            self._rows(
                "INSERT INTO annotate_item (project_id, prompt, prompt_key, source, metadata, criteria, created_at)"
                " SELECT %s, t.prompt, t.prompt_key, %s, '{}', t.criteria, %s FROM imp_item t"
                " ON CONFLICT (project_id, prompt_key) DO NOTHING RETURNING prompt_key, id",
                [pid, self.source[:200], self.now],
            )
        )
        report.items_created += len(item_ids)
        fresh = item_ids.keys() & items.keys()  # made by this batch: nothing of theirs can exist yet
        stored_items = len(item_ids) < len(items)
        if stored_items:
            item_ids.update(
                self._rows(
                    "SELECT t.prompt_key, i.id FROM imp_item t CROSS JOIN LATERAL (SELECT id FROM annotate_item"
                    f" WHERE project_id = %s AND prompt_key = t.prompt_key{lock}) i",
                    [pid],
                )
            )

        # Responses: unique per item and exact text; the first model name seen is kept. Those of the batch's
        # new items go in with a plain INSERT (no unique-index pre-check, no speculative insertion); only
        # those of stored items need `ON CONFLICT`.
        responses: dict[tuple[int, str], tuple[str, str, bool]] = {}
        for p in pairs:
            iid = item_ids[p.pkey]
            if (iid, p.a_key) not in responses:
                responses[(iid, p.a_key)] = (p.a_text, p.a_model, p.pkey in fresh)
            if (iid, p.b_key) not in responses:
                responses[(iid, p.b_key)] = (p.b_text, p.b_model, p.pkey in fresh)
        self._stage("imp_resp", ((iid, k, *rest) for (iid, k), rest in responses.items()))
        staged = len(responses)
        responses.clear()
        if not fetch:  # generic: nothing needs to come back; the rest runs while the next batch is read
            self._send_pairs(pairs, item_ids, fresh, stored_items)
            return {}
        insert = (
            "INSERT INTO annotate_response (item_id, text, text_key, model_name, metadata)"
            " SELECT t.item_id, t.text, t.text_key, t.model_name, '{}' FROM imp_resp t"
        )
        resp_ids = {
            (iid, k): rid
            for iid, k, rid in self._rows(insert + " WHERE t.fresh RETURNING item_id, text_key, id")
        }
        if stored_items:
            resp_ids.update(
                ((iid, k), rid)
                for iid, k, rid in self._rows(
                    insert + " WHERE NOT t.fresh ON CONFLICT (item_id, text_key) DO NOTHING"
                    " RETURNING item_id, text_key, id"
                )
            )
        report.responses_created += len(resp_ids)
        if len(resp_ids) < staged:  # only a stored item has stored responses
            resp_ids.update(
                ((iid, k), rid)
                for iid, k, rid in self._rows(
                    "SELECT t.item_id, t.text_key, r.id FROM imp_resp t CROSS JOIN LATERAL"
                    " (SELECT id FROM annotate_response WHERE item_id = t.item_id AND text_key = t.text_key"
                    f"{lock}) r"
                )
            )

        # Comparisons: the first arrival of a pair fixes its canonical order.
        firsts = self._stage_comparisons(pairs, item_ids, fresh, resp_ids)
        insert = COMPARISONS.format(a="t.a_id", b="t.b_id")
        # As for responses: a plain INSERT for the new items' comparisons, `ON CONFLICT` for stored items'.
        statements = [insert + " WHERE t.fresh ORDER BY t.ord"]
        if stored_items:
            statements.append(insert + " WHERE NOT t.fresh ORDER BY t.ord" + ON_CONFLICT_PAIR)
        cmap: dict[str, tuple[int, str]] = {}
        for sql in statements:
            cmap.update(
                (k, (cid, firsts[k].a_key))
                for k, cid in self._rows(sql + " RETURNING pair_key, id", [pid, self.now])
            )
        created = len(cmap)
        report.comparisons_created += created
        if created < len(firsts):  # stored comparisons, and the text key of their A
            cmap.update(
                (k, (cid, a_key))
                for k, cid, a_key in self._rows(
                    "SELECT t.pair_key, c.id, c.a_key FROM imp_cmp t CROSS JOIN LATERAL"
                    " (SELECT id, (SELECT text_key FROM annotate_response WHERE id = response_a_id) AS a_key"
                    " FROM annotate_comparison WHERE item_id = t.item_id AND pair_key = t.pair_key) c"
                )
            )
        return cmap

    def _stage_comparisons(self, pairs, item_ids, fresh, resp_ids) -> dict[str, ParsedPair]:
        """COPY the batch's pairs, each once as it first arrived, into imp_cmp (the responses' ids when
        `resp_ids` has them, else their text keys); returns them by pair key."""
        firsts: dict[str, ParsedPair] = {}
        for p in pairs:
            if p.pair_key not in firsts:
                firsts[p.pair_key] = p
        rng = self.rng.random
        rows = []
        for k, p in firsts.items():
            iid = item_ids[p.pkey]
            self._ord += 1
            a_id = resp_ids[(iid, p.a_key)] if resp_ids else None
            b_id = resp_ids[(iid, p.b_key)] if resp_ids else None
            rows.append((self._ord, iid, p.pkey in fresh, a_id, b_id, p.a_key, p.b_key, k, rng()))
        self._stage("imp_cmp", rows)
        return firsts

    def _send_pairs(self, pairs, item_ids, fresh, stored_items: bool) -> None:
        """`generic`: the batch's responses (staged in imp_resp) and comparisons go in without waiting
        (`_send`); a comparison finds its responses' ids by their unique index (item, text key)."""
        report = self.report
        self._stage_comparisons(pairs, item_ids, fresh, None)
        insert = (
            "INSERT INTO annotate_response (item_id, text, text_key, model_name, metadata)"
            " SELECT t.item_id, t.text, t.text_key, t.model_name, '{}' FROM imp_resp t"
        )

        def responses(cur) -> None:
            report.responses_created += cur.rowcount

        self._send(insert + " WHERE t.fresh", None, responses)
        if stored_items:
            self._send(
                insert + " WHERE NOT t.fresh ON CONFLICT (item_id, text_key) DO NOTHING", None, responses
            )
        report.duplicates += len(pairs)  # less each comparison made, once counted

        def comparisons(cur) -> None:
            report.comparisons_created += cur.rowcount
            report.duplicates -= cur.rowcount

        response = "(SELECT id FROM annotate_response WHERE item_id = t.item_id AND text_key = t.{})"
        insert = COMPARISONS.format(a=response.format("a_key"), b=response.format("b_key"))
        params = [self.project.pk, self.now]
        self._send(insert + " WHERE t.fresh ORDER BY t.ord", params, comparisons)
        if stored_items:
            self._send(insert + " WHERE NOT t.fresh ORDER BY t.ord" + ON_CONFLICT_PAIR, params, comparisons)

    # --- source labels (trl, hh, safe-rlhf) ----------------------------------------------------------------
    def _source_labels(self, pairs: list[ParsedPair], cmap: dict[str, tuple[int, str]]) -> None:
        rows: dict[int, tuple] = {}
        for p in pairs:
            cid, canon_a = cmap[p.pair_key]
            if cid in rows:
                continue
            label = p.label if p.a_key == canon_a else flipped(p.label)
            rows[cid] = (cid, *(label[f] for f in ANSWER_FIELDS), p.margin)
        self._stage("imp_label", rows.values())
        # A new source judgment and its one revision in one statement; a stored one is left as it is. Sent
        # without waiting (`_send`).
        report = self.report
        report.duplicates += len(pairs)  # less each judgment made, once counted

        def done(cur) -> None:
            report.judgments_created += cur.rowcount
            report.duplicates -= cur.rowcount

        self._send(
            "WITH j AS (INSERT INTO annotate_judgment (project_id, comparison_id, annotator_id, is_source,"
            f" imported, is_gold, revision_count, created_at, updated_at, {FIELDS})"
            f" SELECT %s, t.comparison_id, %s, true, true, false, 1, %s, %s, {_fields('t')} FROM imp_label t"
            f" ON CONFLICT (comparison_id, annotator_id) DO NOTHING RETURNING id, comparison_id, created_at, {FIELDS}),"
            # A trl line's margin stays with its source label (curation.SourceMargin).
            " m AS (INSERT INTO curation_sourcemargin (judgment_id, margin) SELECT j.id, t.margin FROM j"
            " JOIN imp_label t ON t.comparison_id = j.comparison_id WHERE t.margin IS NOT NULL)"
            f" INSERT INTO annotate_judgmentrevision (judgment_id, number, created_at, {FIELDS})"
            f" SELECT j.id, 1, j.created_at, {_fields('j')} FROM j",
            [self.project.pk, self.source_annotator.pk, self.now, self.now],
            done,
        )

    # --- raw votes ------------------------------------------------------------------------------------------
    def _annotators(self, names: set[str]) -> dict[str, Annotator]:
        found = {a.name: a for a in Annotator.objects.filter(project=self.project, name__in=names)}
        missing = [
            Annotator(project=self.project, name=n, kind=Annotator.Kind.CROWD, imported=True)
            for n in names - found.keys()
        ]
        if missing:
            Annotator.objects.bulk_create(missing, ignore_conflicts=True)
            found = {a.name: a for a in Annotator.objects.filter(project=self.project, name__in=names)}
        return found

    def _refused(self, annotator: Annotator, line: int) -> bool:
        """Raw votes and rankings name crowd annotators without a login; a line naming another is rejected."""
        if annotator.kind == Annotator.Kind.CROWD and annotator.user_id is None:
            return False
        self.rejected.append(
            LineError(line, "annotator", f"{annotator.name!r} names a login or a source on this project")
        )
        return True

    def _raw(self, pairs: list[ParsedPair], cmap: dict[str, tuple[int, str]]) -> None:
        """Every row a revision of its annotator's judgment of the pair (made when missing); then each
        touched judgment mirrors its latest revision, and each touched comparison counts its crowd votes."""
        report = self.report
        annotators = self._annotators({p.annotator for p in pairs})
        subs = [p.submission_id for p in pairs if p.submission_id]
        known_subs: dict[str, tuple[int, int]] = {
            s: (c, a)
            for s, c, a in JudgmentRevision.objects.filter(submission_id__in=subs).values_list(
                "submission_id", "judgment__comparison_id", "judgment__annotator_id"
            )
        }
        rows = []
        taken: set[tuple[int, int, int]] = set()
        for p in pairs:
            annotator = annotators[p.annotator]
            if self._refused(annotator, p.line):
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
            if (*key, number) in taken:  # the same revision earlier in the batch
                report.duplicates += 1
                continue
            taken.add((*key, number))
            label = p.label if p.a_key == canon_a else flipped(p.label)
            rows.append(
                (
                    len(rows),
                    cid,
                    annotator.pk,
                    number,
                    p.submission_id,
                    p.created_at or self.now,
                    *(label[f] for f in ANSWER_FIELDS),
                )
            )
        self._gold(pairs, cmap)
        if not rows:
            return
        self._stage("imp_vote", rows)
        # One statement, sent without waiting (`_send`): the server makes the batch's judgments and revisions
        # while the next batch is read. Judgments that do not exist yet, one per (comparison, annotator), are
        # made as their revisions in this batch leave them (the highest number's answers; created_at the
        # earlier of the first and the latest revision's time, updated_at the latest's), so a new judgment is
        # written once; their comparisons gain a crowd vote: noted, and counted once at the end of the import
        # (`finish`). The new judgments' revisions go in with a plain INSERT (ids from the first INSERT's
        # RETURNING); revisions of stored judgments skip the numbers they have already (a re-import), and those
        # judgments mirror their latest revision again (`_mirror`, after `sync`).
        columns = f"INSERT INTO annotate_judgmentrevision (judgment_id, number, submission_id, created_at, {FIELDS})"
        values = f"t.number, t.submission_id, t.created_at, {_fields('t')} FROM imp_vote t"
        staged = len(rows)

        def done(cur) -> None:
            made, fresh, stored = cur.fetchone()
            report.judgments_created += made
            revisions = fresh + len(stored)
            report.revisions_created += revisions
            report.duplicates += staged - revisions
            self._stored_judgments.update(stored)

        self._send(
            "WITH j AS (INSERT INTO annotate_judgment (project_id, comparison_id, annotator_id, is_source,"
            f" imported, is_gold, revision_count, created_at, updated_at, {FIELDS})"
            " SELECT %s, l.comparison_id, l.annotator_id, false, true, false, l.n, LEAST(l.first_at,"
            f" l.created_at), l.created_at, {_fields('l')} FROM (SELECT DISTINCT ON (comparison_id,"
            " annotator_id) *, count(*) OVER w AS n, first_value(created_at) OVER (w ORDER BY number) AS"
            " first_at FROM imp_vote WINDOW w AS (PARTITION BY comparison_id, annotator_id)"
            " ORDER BY comparison_id, annotator_id, number DESC) l"
            " ON CONFLICT (comparison_id, annotator_id) DO NOTHING RETURNING id, comparison_id, annotator_id),"
            " c AS (INSERT INTO imp_counted SELECT DISTINCT comparison_id FROM j ON CONFLICT DO NOTHING),"
            f" fr AS ({columns} SELECT j.id, {values} JOIN j ON j.comparison_id = t.comparison_id"
            " AND j.annotator_id = t.annotator_id ORDER BY t.ord RETURNING judgment_id),"
            f" sr AS ({columns} SELECT s.id, {values} CROSS JOIN LATERAL (SELECT id FROM annotate_judgment"
            " WHERE comparison_id = t.comparison_id AND annotator_id = t.annotator_id) s ORDER BY t.ord"
            " ON CONFLICT (judgment_id, number) DO NOTHING RETURNING judgment_id)"
            " SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM fr),"
            " (SELECT coalesce(array_agg(judgment_id), '{}') FROM sr)",
            [self.project.pk],
            done,
        )

    # --- raw rankings ---------------------------------------------------------------------------------------
    def _rankings(self, lines: list[ParsedPair]) -> None:
        """Every ranking row a revision of its annotator's ranking of the item (made when missing); the ranking
        mirrors its highest-numbered revision, and when a row is that revision the ranking service writes the
        pair judgments it implies (`write_implied_judgments`: one code path with the workbench). Revisions a
        ranking has already (a re-import) and repeated submission ids are duplicates."""
        if not lines:
            return
        report = self.report
        annotators = self._annotators({p.ranking.annotator for p in lines})
        pkeys = {p.pkey for p in lines}
        ids: dict[tuple[str, str], tuple[int, int]] = {
            (pkey, key): (item_id, rid)
            for pkey, key, item_id, rid in Response.objects.filter(
                item__project=self.project, item__prompt_key__in=pkeys
            ).values_list("item__prompt_key", "text_key", "item_id", "id")
        }
        subs = [p.ranking.submission_id for p in lines if p.ranking.submission_id]
        known_subs = dict(
            RankingRevision.objects.filter(submission_id__in=subs).values_list("submission_id", "ranking_id")
        )
        for p in lines:
            parsed = p.ranking
            annotator = annotators[parsed.annotator]
            if self._refused(annotator, p.line):
                continue
            response_ids = [ids[(p.pkey, key)][1] for key in parsed.keys]
            item_id = ids[(p.pkey, parsed.keys[0])][0]
            if parsed.revision is not None:
                number = parsed.revision
            else:  # as pair votes: the next revision of that annotator's ranking in this file
                self._raw_positions[(parsed.annotator, p.pkey)] += 1
                number = self._raw_positions[(parsed.annotator, p.pkey)]
            # The item's row lock serialises this with the workbench's writes on its pairs (ranking_services).
            Item.objects.select_for_update().filter(pk=item_id).values_list("pk").first()
            ranking = Ranking.objects.filter(item_id=item_id, annotator=annotator).first()
            if parsed.submission_id and parsed.submission_id in known_subs:
                if ranking is None or known_subs[parsed.submission_id] != ranking.pk:
                    self.rejected.append(
                        LineError(p.line, "submission_id", "already used by another ranking")
                    )
                else:
                    report.duplicates += 1
                continue
            fields = _ranking_fields(parsed, response_ids)
            at = parsed.created_at or self.now
            if ranking is None:
                ranking = Ranking.objects.create(
                    project=self.project, item_id=item_id, annotator=annotator, imported=True,
                    revision_count=0, created_at=at, updated_at=at, **fields,
                )  # fmt: skip
                report.rankings_created += 1
            elif RankingRevision.objects.filter(ranking=ranking, number=number).exists():
                report.duplicates += 1
                continue
            RankingRevision.objects.create(
                ranking=ranking, number=number, submission_id=parsed.submission_id, created_at=at, **fields
            )
            if parsed.submission_id:
                known_subs[parsed.submission_id] = ranking.pk
            report.ranking_revisions_created += 1
            # As a pair vote's judgment: the ranking mirrors its highest-numbered revision (whatever order the
            # file lists them in), counts them, and was created at the earliest.
            top = RankingRevision.objects.filter(ranking=ranking).aggregate(
                number=Max("number"), n=Count("pk")
            )
            latest = top["number"] == number
            ranking.revision_count = top["n"]
            ranking.created_at = min(ranking.created_at, at)
            if latest:
                for name, value in fields.items():
                    setattr(ranking, name, value)
                ranking.updated_at = at
            ranking.save()
            if latest:
                write_implied_judgments(ranking, answers={}, now=at)

    def _gold(self, pairs: list[ParsedPair], cmap: dict[str, tuple[int, str]]) -> None:
        """Raw rows' gold answers: a comparison without gold gets the first one named (a stored one stays)."""
        golds: dict[int, Gold] = {}
        for p in pairs:
            if p.gold is None:
                continue
            cid, canon_a = cmap[p.pair_key]
            if cid not in golds:
                gold = p.gold if p.a_key == canon_a else flipped_gold(p.gold)
                golds[cid] = Gold(comparison_id=cid, **gold)
        if golds:
            Gold.objects.bulk_create(golds.values(), ignore_conflicts=True)

    def _mirror(self, judgments: list[int]) -> None:
        """Stored judgments with new revisions mirror their highest-numbered revision again."""
        self.cur.execute(
            f"UPDATE annotate_judgment j SET ({FIELDS}, revision_count, created_at, updated_at) ="
            f" ({_fields('r')}, r.n, LEAST(r.first_at, r.created_at), r.created_at)"
            " FROM (SELECT DISTINCT ON (judgment_id) *, count(*) OVER w AS n,"
            " first_value(created_at) OVER (w ORDER BY number) AS first_at"
            " FROM annotate_judgmentrevision WHERE judgment_id = ANY(%s)"
            " WINDOW w AS (PARTITION BY judgment_id) ORDER BY judgment_id, number DESC) r"
            " WHERE j.id = ANY(%s) AND j.id = r.judgment_id",
            [judgments, judgments],
        )

    def finish(self) -> None:
        """The end of a good import: every comparison that gained a crowd judgment counts them again (once,
        not once a batch: a count is in the queue's index, so each update rewrites the row and its index
        entries)."""
        self.sync()
        if self.fmt != "raw":
            return
        self.cur.execute("ANALYZE imp_counted")  # its size, for the plan of the update
        self.cur.execute(
            "UPDATE annotate_comparison c SET crowd_judgments = k.n FROM (SELECT t.comparison_id,"
            " (SELECT count(*) FROM annotate_judgment j WHERE j.comparison_id = t.comparison_id"
            " AND NOT j.is_source AND NOT j.is_gold) AS n FROM imp_counted t) k"
            " WHERE c.id = k.comparison_id AND c.crowd_judgments <> k.n"
        )


def _ranking_fields(parsed: ParsedRanking, response_ids: list[int]) -> dict[str, Any]:
    """A parsed ranking's answers as Ranking fields: positions become the item's response ids."""
    return {
        "tiers": [[response_ids[i] for i in tier] for tier in parsed.tiers],
        "all_bad": parsed.all_bad,
        "safety": {str(response_ids[i]): s for i, s in enumerate(parsed.safety) if s is not None},
        "display_order": response_ids,
        "justification": parsed.justification,
        "time_spent_ms": parsed.time_spent_ms,
    }
