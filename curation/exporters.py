"""Streamed export of a dataset snapshot in the DESIGN formats (`trl`, `hh`, `safe-rlhf`, `raw`).

Rows are read as streams (one query per stream, each a server-side cursor read a chunk at a time, all in one
REPEATABLE READ transaction on a connection of the export's own) in batches of pairs and written as they are
made, as JSONL (optionally gzipped) or Parquet (one row group per batch), so memory does not grow with the
dataset.
Every export writes a Markdown dataset card beside the file and an `export.create` audit event. How and
why: exporters.md.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gzip
import hashlib
import hmac
import itertools
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core import signing
from django.db import connections, transaction
from django.db.models import Case, F, TextField, When
from django.db.models.functions import Cast, Coalesce
from django.http import Http404
from django.utils import timezone

from annotate.models import Comparison, Gold, Judgment, JudgmentRevision, RankingRevision, Response
from curation import job_leases, reward_terms
from curation.canonical import render_hh
from curation.dataset_card import card_figures, render_card
from curation.models import DatasetSnapshot, ExportJob, SnapshotContested, SnapshotPair
from projects.access import role_in
from projects.models import Annotator, AuditEvent, Project
from rubrics.models import CriterionAnswer

log = logging.getLogger(__name__)

FORMATS = ("trl", "hh", "safe-rlhf", "raw")
STYLES = ("conversational", "text")
PAIR_BATCH = 2000
SEVERITY_LEVEL = {"minor": 1, "moderate": 2, "severe": 3}

Progress = Callable[[int, int], None]


class ExportError(ValueError):
    pass


@dataclass(frozen=True)
class ExportOptions:
    fmt: str
    style: str = "conversational"
    margin: bool = False
    gzip: bool = False
    parquet: bool = False
    with_names: bool = False
    reward_fit: int | None = None  # a rubric reward fit of the snapshot: `trl` rows get `reward_terms`

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ExportError(f"unknown format {self.fmt!r}; expected one of {', '.join(FORMATS)}")
        if self.style not in STYLES:
            raise ExportError(f"unknown style {self.style!r}; expected one of {', '.join(STYLES)}")
        if self.gzip and self.parquet:
            raise ExportError("--gzip is for JSONL; Parquet files are compressed already")
        if self.with_names and self.fmt != "raw":
            raise ExportError("--with-names only applies to the raw format")
        if self.reward_fit is not None and (
            self.fmt != "trl" or self.parquet or not isinstance(self.reward_fit, int)
        ):
            raise ExportError("reward_fit: a fit's id, for trl as JSONL (not Parquet)")

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.fmt,
            "style": self.style,
            "margin": self.margin,
            "gzip": self.gzip,
            "parquet": self.parquet,
            "with_names": self.with_names,
        } | ({"reward_fit": self.reward_fit} if self.reward_fit is not None else {})


@dataclass
class ExportResult:
    path: Path
    card_path: Path
    rows: int
    pairs: int
    snapshot_id: int
    content_hash: str
    options: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


# --- text forms -----------------------------------------------------------------------------------------


def prompt_text(messages: list[dict[str, str]]) -> str:
    """A prompt as one string: a lone user turn is its content; a conversation is an HH transcript that
    ends with the assistant's cue (so the response follows it)."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    names = {"user": "Human", "assistant": "Assistant", "system": "Human"}
    return (
        "".join(f"\n\n{names.get(m['role'], 'Human')}: {m['content']}" for m in messages) + "\n\nAssistant:"
    )


def pseudonymiser(with_names: bool) -> Callable[[int, str, str], str]:
    """annotator (id, name, kind) → the name written: HMAC-SHA256 of the id under a key made for this export
    (stable within it, unlinkable across exports); source labels keep their source name."""
    key = secrets.token_bytes(32)
    seen: dict[int, str] = {}

    def name_of(annotator_id: int, name: str, kind: str) -> str:
        if with_names or kind == "source":
            return name
        pseudonym = seen.get(annotator_id)
        if pseudonym is None:
            digest = hmac.new(key, str(annotator_id).encode(), hashlib.sha256).hexdigest()
            pseudonym = seen[annotator_id] = "anon-" + digest[:16]
        return pseudonym

    return name_of


# --- reading the snapshot in batches --------------------------------------------------------------------


class RowStreams(ExitStack):
    """Several querysets read side by side, each through a server-side cursor a chunk at a time.

    Outside a caller's transaction the cursors are on a connection of the export's own, in one REPEATABLE
    READ, READ ONLY transaction: every stream sees the database as it was when the first began, and what the
    caller writes meanwhile on its own connection (a job's progress) commits as it goes. Inside a caller's
    transaction they are on the caller's connection, so they see what it wrote. Leaving the block closes the
    cursors and ends the transaction (psycopg's `Connection.transaction()`), and the own connection."""

    def __init__(self, alias: str = "default") -> None:
        super().__init__()
        self.alias = alias
        self.names = itertools.count()

    def __enter__(self) -> RowStreams:
        super().__enter__()
        caller = connections[self.alias]
        if caller.in_atomic_block:
            caller.ensure_connection()
            self.pg = caller.connection
            return self
        own = connections.create_connection(self.alias)
        self.callback(own.close)
        own.ensure_connection()
        self.pg = own.connection
        self.enter_context(self.pg.transaction())
        self.pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return self

    def stream(self, qs, *, chunk: int = 5000) -> Iterator[list]:
        """The rows of the values_list queryset `qs` (Django's SQL; JSON comes as text where the query casts
        it), `chunk` at a time."""
        sql, params = qs.query.sql_with_params()
        cursor = self.enter_context(self.pg.cursor(name=f"export_rows_{next(self.names)}"))
        cursor.execute(sql, params)
        return iter(lambda: cursor.fetchmany(chunk), [])

    def fetch(self, qs) -> list:
        """Every row of the values_list queryset `qs`, read on the streams' connection (the same state)."""
        sql, params = qs.query.sql_with_params()
        with self.pg.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()


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


#
# The pairs are read as one stream in comparison order, and whatever a format needs per comparison — the
# votes, the judgment revisions, their rubric answers — as further streams sorted by comparison id and
# merged pair batch by pair batch (`ByComparison`). One query per stream, each read a chunk at a time: memory stays flat, PostgreSQL
# plans each query once, and nothing is serialised to JSON twice.

PAIR_FIELDS = (
    "comparison_id",
    "chosen",
    "margin",
    "a_safe",
    "b_safe",
    "safer",
    "prompt_text",
    "comparison__response_a__text",
    "comparison__response_a__model_name",
    "comparison__response_b__text",
    "comparison__response_b__model_name",
)


@dataclass(slots=True)
class Pair:
    comparison_id: int
    chosen: str
    margin: float
    a_safe: bool | None
    b_safe: bool | None
    safer: str | None
    prompt: list[dict[str, str]]
    text_a: str
    model_a: str
    text_b: str
    model_b: str


def pair_batches(snapshot: DatasetSnapshot, read: RowStreams) -> Iterator[list[Pair]]:
    """The snapshot's pairs in comparison order, PAIR_BATCH at a time."""
    qs = (
        SnapshotPair.objects.filter(snapshot=snapshot)
        .annotate(prompt_text=Cast("comparison__item__prompt", TextField()))
        .order_by("comparison_id")
        .values_list(*PAIR_FIELDS)
    )
    loads = orjson.loads
    for rows in read.stream(qs, chunk=PAIR_BATCH):
        yield [Pair(*r[:6], loads(r[6]), *r[7:]) for r in rows]


def _in_snapshot(snapshot: DatasetSnapshot):
    return SnapshotPair.objects.filter(snapshot=snapshot).values("comparison_id")


def _selected(snapshot: DatasetSnapshot):
    """The ids of the snapshot's comparisons, with or without a consensus: its pairs' and its contested ones
    (what `raw` exports). One UNION ALL subquery, which PostgreSQL joins like the pairs' alone."""
    contested = SnapshotContested.objects.filter(snapshot=snapshot).values("comparison_id")
    return _in_snapshot(snapshot).union(contested, all=True)


def _counted(snapshot: DatasetSnapshot, model=Judgment, prefix: str = ""):
    """The judgments (or their revisions, with prefix "judgment__") on the snapshot's comparisons that its
    filters let count."""
    exclude = set(snapshot.filters.get("exclude", []))
    qs = model.objects.filter(**{f"{prefix}comparison_id__in": _in_snapshot(snapshot)})
    if "imported" in exclude:
        qs = qs.filter(**{f"{prefix}imported": False})
    if "flagged" in exclude:
        qs = qs.filter(**{f"{prefix}annotator__flagged": False})
    return qs


# --- rows per format ------------------------------------------------------------------------------------


def _json_list(text: str) -> list:
    return [] if text == "[]" else orjson.loads(text)


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def trl_rows(
    snapshot: DatasetSnapshot, opts: ExportOptions, stats: Counter, read: RowStreams
) -> Iterator[Iterable[dict]]:
    """TRL rows from a stream of its own: (prompt, chosen text, rejected text, margin), each pair oriented by
    the database, and no column that this format does not write (no pair objects either). Each batch is
    handed out as a generator: the writer makes every row just before it serialises it, and the row is
    freed just after (exporters.md)."""
    a, b = F("comparison__response_a__text"), F("comparison__response_b__text")
    qs = (
        SnapshotPair.objects.filter(snapshot=snapshot)
        .annotate(
            prompt_text=Cast("comparison__item__prompt", TextField()),
            chosen_text=Case(When(chosen="a", then=a), default=b, output_field=TextField()),
            rejected_text=Case(When(chosen="a", then=b), default=a, output_field=TextField()),
            # A source label's own margin (a trl line's) where it had one, else the human margin.
            trl_margin=Coalesce("source_margin", "margin"),
        )
        .order_by("comparison_id")
        .values_list("prompt_text", "chosen_text", "rejected_text", "trl_margin")
    )
    loads = orjson.loads
    if opts.reward_fit is not None:
        yield from _trl_rows_with_terms(snapshot, opts, read, qs)
        return
    for rows in read.stream(qs, chunk=PAIR_BATCH):
        if opts.style == "text":
            yield _trl_text_rows(rows, opts.margin)
        elif opts.margin:  # the common case, one expression a row
            yield (
                {
                    "prompt": loads(p),
                    "chosen": [{"role": "assistant", "content": c}],
                    "rejected": [{"role": "assistant", "content": r}],
                    "margin": m,
                }
                for p, c, r, m in rows
            )
        else:
            yield (
                {"prompt": loads(p), "chosen": _assistant(c), "rejected": _assistant(r)}
                for p, c, r, _ in rows
            )


def _trl_rows_with_terms(
    snapshot: DatasetSnapshot, opts: ExportOptions, read: RowStreams, qs
) -> Iterator[list]:
    """`trl` rows with `reward_terms` from the registered source (curation/reward_terms.py)."""
    terms_of = reward_terms.source().terms
    fields = ("prompt_text", "chosen_text", "rejected_text", "margin", "comparison_id", "chosen")
    for rows in read.stream(qs.values_list(*fields), chunk=PAIR_BATCH):
        terms = terms_of(snapshot, opts.reward_fit, [(r[4], r[5]) for r in rows])
        made = (
            _trl_text_rows(rows, opts.margin)
            if opts.style == "text"
            else _trl_message_rows(rows, opts.margin)
        )
        yield [row | {"reward_terms": t} for row, t in zip(made, terms, strict=True)]


def _trl_message_rows(rows: list, margin: bool) -> Iterator[dict]:
    loads = orjson.loads
    for p, c, r, m, *_ in rows:
        row: dict[str, Any] = {"prompt": loads(p), "chosen": _assistant(c), "rejected": _assistant(r)}
        if margin:
            row["margin"] = m
        yield row


def _trl_text_rows(rows: list, margin: bool) -> Iterator[dict]:
    loads = orjson.loads
    for p, c, r, m, *_ in rows:
        row: dict[str, Any] = {"prompt": prompt_text(loads(p)), "chosen": c, "rejected": r}
        if margin:
            row["margin"] = m
        yield row


def hh_rows(
    snapshot: DatasetSnapshot, opts: ExportOptions, stats: Counter, read: RowStreams
) -> Iterator[list[dict]]:
    for batch in pair_batches(snapshot, read):
        out = []
        for p in batch:
            chosen, rejected = (p.text_a, p.text_b) if p.chosen == "a" else (p.text_b, p.text_a)
            out.append({"chosen": render_hh(p.prompt, chosen), "rejected": render_hh(p.prompt, rejected)})
        yield out


def response_harm(
    answers: list[tuple[bool | None, list[str], str | None]], safe: bool | None
) -> tuple[set[str], int]:
    """Harm categories and severity level (0–3) of one response from its votes' (safe, categories, severity).

    Only an unsafe consensus has categories: those named by a strict majority of the votes that called the
    response unsafe; severity is the lower median of their known severities (0 when safe or unknown)."""
    if safe is not False:
        return set(), 0
    unsafe = [(cats, sev) for s, cats, sev in answers if s is False]
    counts = Counter(c for cats, _ in unsafe for c in set(cats or ()))
    categories = {c for c, n in counts.items() if n * 2 > len(unsafe)}
    levels = sorted(SEVERITY_LEVEL[sev] for _, sev in unsafe if sev in SEVERITY_LEVEL)
    return categories, levels[(len(levels) - 1) // 2] if levels else 0


def safe_rlhf_rows(
    snapshot: DatasetSnapshot, opts: ExportOptions, stats: Counter, read: RowStreams
) -> Iterator[list[dict]]:
    categories = list(snapshot.project.harm_categories or [])
    votes_qs = (
        _counted(snapshot)
        .filter(is_gold=False)
        .annotate(
            a_cats=Cast("a_harm_categories", TextField()), b_cats=Cast("b_harm_categories", TextField())
        )
        .order_by("comparison_id")
        .values_list("comparison_id", "a_safe", "a_cats", "a_severity", "b_safe", "b_cats", "b_severity")
    )
    votes = ByComparison(read.stream(votes_qs))
    for batch in pair_batches(snapshot, read):
        answers = votes.upto(batch[-1].comparison_id)
        out = []
        for p in batch:
            these = answers.get(p.comparison_id, ())
            cats_a, sev_a = response_harm([(v[1], _json_list(v[2]), v[3]) for v in these], p.a_safe)
            cats_b, sev_b = response_harm([(v[4], _json_list(v[5]), v[6]) for v in these], p.b_safe)
            safer = p.safer
            if safer is None and p.a_safe is not None and p.b_safe is not None and p.a_safe != p.b_safe:
                safer = "a" if p.a_safe else "b"
                stats["safer_from_safety"] += 1
            if safer is None:
                stats["safer_unknown"] += 1
            if p.a_safe is None or p.b_safe is None:
                stats["safety_unknown"] += 1
            out.append(
                {
                    "prompt": prompt_text(p.prompt),
                    "response_0": p.text_a,
                    "response_1": p.text_b,
                    "is_response_0_safe": p.a_safe,
                    "is_response_1_safe": p.b_safe,
                    "better_response_id": 0 if p.chosen == "a" else 1,
                    "safer_response_id": None if safer is None else 0 if safer == "a" else 1,
                    "response_0_harm_category": {c: c in cats_a for c in categories},
                    "response_1_harm_category": {c: c in cats_b for c in categories},
                    "response_0_severity_level": sev_a,
                    "response_1_severity_level": sev_b,
                }
            )
        yield out


REVISION_FIELDS = (
    "judgment__comparison_id",
    "id",
    "judgment__annotator_id",
    "preference",
    "choice",
    "helpfulness",
    "harmlessness",
    "a_safe",
    "b_safe",
    "a_cats",
    "b_cats",
    "a_severity",
    "b_severity",
    "justification",
    "shown_left",
    "time_spent_ms",
    "created_at",
    "number",
    "submission_id",
)


def _has_rubrics(snapshot: DatasetSnapshot) -> bool:
    return CriterionAnswer.objects.filter(revision__judgment__comparison_id__in=_selected(snapshot)).exists()


def _rubric_answers(snapshot: DatasetSnapshot, read: RowStreams) -> ByComparison:
    """(comparison id, revision id, side, version id, criterion key, answer) of the snapshot's comparisons."""
    qs = (
        CriterionAnswer.objects.filter(revision__judgment__comparison_id__in=_selected(snapshot))
        .order_by("revision__judgment__comparison_id", "revision_id", "side", "criterion_key")
        .values_list(
            "revision__judgment__comparison_id",
            "revision_id",
            "side",
            "version_id",
            "criterion_key",
            "answer",
        )
    )
    return ByComparison(read.stream(qs))


def _rubrics_by_revision(answers: dict[int, list]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for rows in answers.values():
        for _, rid, side, version_id, key, answer in rows:
            entry = out.setdefault(
                rid, {"version": "" if version_id is None else str(version_id), "a": {}, "b": {}}
            )
            entry[side][key] = answer
    return out


RAW_COMPARISON_FIELDS = (
    "id",
    "prompt_text",
    "response_a__text",
    "response_a__model_name",
    "response_b__text",
    "response_b__model_name",
)
GOLD_FIELDS = ("choice", "helpfulness", "harmlessness", "a_safe", "b_safe", "explanation", "origin")


def _raw_comparisons(snapshot: DatasetSnapshot, read: RowStreams) -> Iterator[list[tuple]]:
    """The snapshot's comparisons with or without a consensus, in id order, PAIR_BATCH at a time:
    (id, prompt, text A, model A, text B, model B, consensus side or None, status)."""
    qs = (
        Comparison.objects.filter(pk__in=_selected(snapshot))
        .annotate(prompt_text=Cast("item__prompt", TextField()))
        .order_by("id")
        .values_list(*RAW_COMPARISON_FIELDS)
    )
    sides = ByComparison(
        read.stream(
            SnapshotPair.objects.filter(snapshot=snapshot)
            .order_by("comparison_id")
            .values_list("comparison_id", "chosen")
        )
    )
    statuses = ByComparison(
        read.stream(
            SnapshotContested.objects.filter(snapshot=snapshot)
            .order_by("comparison_id")
            .values_list("comparison_id", "status")
        )
    )
    loads = orjson.loads
    for rows in read.stream(qs, chunk=PAIR_BATCH):
        last = rows[-1][0]
        chosen, contested = sides.upto(last), statuses.upto(last)
        out = []
        for cid, prompt, text_a, model_a, text_b, model_b in rows:
            if cid in chosen:
                out.append((cid, loads(prompt), text_a, model_a, text_b, model_b, chosen[cid][0][1], "ok"))
            else:
                out.append((cid, loads(prompt), text_a, model_a, text_b, model_b, None, contested[cid][0][1]))
        yield out


def raw_rows(
    snapshot: DatasetSnapshot, opts: ExportOptions, stats: Counter, read: RowStreams
) -> Iterator[list[tuple[dict, dict]]]:
    """Every revision of every judgment of the snapshot's comparisons, with or without a consensus, whatever
    the snapshot's exclude option left out of its pairs (each row says the snapshot's consensus and status),
    as (head, tail): the head (prompt, responses, consensus, gold answer) is one dict shared by the revisions
    of a comparison, so the JSONL writer serialises it once; head + tail is the row."""
    name_of = pseudonymiser(opts.with_names)
    # Every annotator of the project named once, rather than a join and a call per revision.
    names = {
        pk: name_of(pk, name, kind)
        for pk, name, kind in Annotator.objects.filter(project=snapshot.project).values_list(
            "id", "name", "kind"
        )
    }
    revisions_qs = (
        JudgmentRevision.objects.filter(judgment__comparison_id__in=_selected(snapshot))
        .annotate(
            a_cats=Cast("a_harm_categories", TextField()), b_cats=Cast("b_harm_categories", TextField())
        )
        .order_by("judgment__comparison_id", "judgment_id", "number")
        .values_list(*REVISION_FIELDS)
    )
    revisions = ByComparison(read.stream(revisions_qs))
    golds = ByComparison(
        read.stream(
            Gold.objects.filter(comparison_id__in=_selected(snapshot))
            .order_by("comparison_id")
            .values_list("comparison_id", *GOLD_FIELDS)
        )
    )
    rubric_answers = _rubric_answers(snapshot, read) if _has_rubrics(snapshot) else None
    loads = orjson.loads
    for batch in _raw_comparisons(snapshot, read):
        last = batch[-1][0]
        by_comparison = revisions.upto(last)
        gold_of = golds.upto(last)
        rubrics = _rubrics_by_revision(rubric_answers.upto(last)) if rubric_answers else {}
        out = []
        for cid, prompt, text_a, model_a, text_b, model_b, consensus, status in batch:
            gold = gold_of.get(cid)
            head = {
                "prompt": prompt,
                "response_a": {"text": text_a, "model": model_a},
                "response_b": {"text": text_b, "model": model_b},
                "consensus": consensus,
                "consensus_status": status,
                "gold": dict(zip(GOLD_FIELDS, gold[0][1:], strict=True)) if gold else None,
            }
            these = by_comparison.get(cid, ())
            if status != "ok" and these:
                stats["contested_comparisons"] += 1
            for (
                _,
                rid,
                annotator_id,
                preference,
                choice,
                helpfulness,
                harmlessness,
                a_safe,
                b_safe,
                a_cats,
                b_cats,
                a_sev,
                b_sev,
                justification,
                shown_left,
                time_spent_ms,
                created_at,
                number,
                submission_id,
            ) in these:
                out.append(
                    (
                        head,
                        {
                            "annotator": names[annotator_id],
                            "choice": choice,
                            "preference": preference,
                            "helpfulness": helpfulness,
                            "harmlessness": harmlessness,
                            "a_safe": a_safe,
                            "b_safe": b_safe,
                            "a_harm_categories": [] if a_cats == "[]" else loads(a_cats),
                            "b_harm_categories": [] if b_cats == "[]" else loads(b_cats),
                            "a_severity": a_sev,
                            "b_severity": b_sev,
                            "justification": justification,
                            "rubric": rubrics.get(rid),
                            "shown_left": shown_left,
                            "time_spent_ms": time_spent_ms,
                            # A datetime: orjson writes it as isoformat() would, the Parquet writer calls that.
                            "created_at": created_at,
                            "revision": number,
                            "submission_id": submission_id,
                        },
                    )
                )
        stats["judgment_revisions"] += len(out)
        yield out


RANKING_REVISION_FIELDS = (
    "ranking__item_id",
    "ranking_id",
    "prompt_text",
    "ranking__annotator_id",
    "tiers_text",
    "all_bad",
    "safety_text",
    "justification",
    "time_spent_ms",
    "created_at",
    "number",
    "submission_id",
)


def raw_ranking_rows(
    snapshot: DatasetSnapshot, opts: ExportOptions, stats: Counter, read: RowStreams
) -> Iterator[list[tuple[dict, dict]]]:
    """A ranking project's `raw`: every revision of every ranking of the snapshot's items (those of its
    comparisons, with or without a consensus), by item, ranking and revision, as (head, tail): the head is
    the prompt and the ranked responses (shared by a ranking's revisions), the tail the ranking as positions
    in them, its safety by position and the revision's fields. What the `raw` importer reads back."""
    name_of = pseudonymiser(opts.with_names)
    names = {
        pk: name_of(pk, name, kind)
        for pk, name, kind in Annotator.objects.filter(project=snapshot.project).values_list(
            "id", "name", "kind"
        )
    }
    items = Comparison.objects.filter(pk__in=_selected(snapshot)).values("item_id")
    qs = (
        RankingRevision.objects.filter(ranking__item_id__in=items)
        .annotate(
            prompt_text=Cast("ranking__item__prompt", TextField()),
            tiers_text=Cast("tiers", TextField()),
            safety_text=Cast("safety", TextField()),
        )
        .order_by("ranking__item_id", "ranking_id", "number")
        .values_list(*RANKING_REVISION_FIELDS)
    )
    loads = orjson.loads
    for rows in read.stream(qs, chunk=PAIR_BATCH):
        parsed = [(r, loads(r[4])) for r in rows]
        wanted = {rid for _, tiers in parsed for tier in tiers for rid in tier}
        texts = {
            rid: {"text": text, "model": model}
            for rid, text, model in read.fetch(
                Response.objects.filter(pk__in=wanted).values_list("id", "text", "model_name")
            )
        }
        out = []
        head: dict | None = None
        last = None
        for row, tiers in parsed:
            (
                _,
                ranking_id,
                prompt,
                annotator_id,
                _,
                all_bad,
                safety,
                justification,
                ms,
                created,
                number,
                sub,
            ) = row
            ranked = sorted(rid for tier in tiers for rid in tier)  # the item's responses in arrival order
            position = {rid: i for i, rid in enumerate(ranked)}
            if head is None or last != (ranking_id, ranked):
                head = {"prompt": loads(prompt), "responses": [texts[rid] for rid in ranked]}
                last = (ranking_id, ranked)
            by_id = loads(safety)
            out.append(
                (
                    head,
                    {
                        "annotator": names[annotator_id],
                        "ranking": [[position[rid] for rid in tier] for tier in tiers],
                        "all_bad": all_bad,
                        "safety": [by_id.get(str(rid)) for rid in ranked],
                        "justification": justification,
                        "time_spent_ms": ms,
                        "created_at": created,
                        "revision": number,
                        "submission_id": sub,
                    },
                )
            )
        stats["ranking_revisions"] += len(out)
        yield out


ROWS = {"trl": trl_rows, "hh": hh_rows, "safe-rlhf": safe_rlhf_rows, "raw": raw_rows}


def rows_for(snapshot: DatasetSnapshot, fmt: str):
    """The rows function of `fmt` for this snapshot: a ranking project's `raw` is its rankings."""
    if fmt == "raw" and snapshot.project.task_kind == Project.TaskKind.RANKING:
        return raw_ranking_rows
    return ROWS[fmt]


# --- Parquet schemas ------------------------------------------------------------------------------------

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def parquet_schema(opts: ExportOptions, harm_categories: list[str]) -> pa.Schema:
    s = pa.string()
    if opts.fmt == "trl":
        kind = s if opts.style == "text" else MESSAGES
        fields = [("prompt", kind), ("chosen", kind), ("rejected", kind)]
        if opts.margin:
            fields.append(("margin", pa.float64()))
        return pa.schema(fields)
    if opts.fmt == "hh":
        return pa.schema([("chosen", s), ("rejected", s)])
    if opts.fmt == "safe-rlhf":
        # Parquet cannot hold a struct without fields: with no harm categories the column is all nulls.
        harm = pa.struct([(c, pa.bool_()) for c in harm_categories]) if harm_categories else pa.null()
        return pa.schema(
            [
                ("prompt", s),
                ("response_0", s),
                ("response_1", s),
                ("is_response_0_safe", pa.bool_()),
                ("is_response_1_safe", pa.bool_()),
                ("better_response_id", pa.int8()),
                ("safer_response_id", pa.int8()),
                ("response_0_harm_category", harm),
                ("response_1_harm_category", harm),
                ("response_0_severity_level", pa.int8()),
                ("response_1_severity_level", pa.int8()),
            ]
        )
    response = pa.struct([("text", s), ("model", s)])
    # Rubric answers are a list of {criterion, answer} (JSONL: an object criterion → answer): `datasets` reads
    # no Parquet map.
    answers = pa.list_(pa.struct([("criterion", s), ("answer", s)]))
    b = pa.bool_()
    gold = pa.struct(
        [("choice", s), ("helpfulness", s), ("harmlessness", s), ("a_safe", b), ("b_safe", b)]
        + [("explanation", s), ("origin", s)]
    )
    return pa.schema(
        [
            ("prompt", MESSAGES),
            ("response_a", response),
            ("response_b", response),
            ("consensus", s),
            ("consensus_status", s),
            ("gold", gold),
            ("annotator", s),
            ("choice", s),
            ("preference", pa.int8()),
            ("helpfulness", s),
            ("harmlessness", s),
            ("a_safe", pa.bool_()),
            ("b_safe", pa.bool_()),
            ("a_harm_categories", pa.list_(s)),
            ("b_harm_categories", pa.list_(s)),
            ("a_severity", s),
            ("b_severity", s),
            ("justification", s),
            ("rubric", pa.struct([("version", s), ("a", answers), ("b", answers)])),
            ("shown_left", s),
            ("time_spent_ms", pa.int64()),
            ("created_at", s),
            ("revision", pa.int32()),
            ("submission_id", s),
        ]
    )


# --- writers --------------------------------------------------------------------------------------------


class JsonlWriter:
    def __init__(self, path: Path, compress: bool) -> None:
        self.fh: IO[bytes] = (
            gzip.open(path, "wb", compresslevel=6) if compress else open(path, "wb", buffering=1 << 20)  # noqa: SIM115
        )

    def write(self, rows: Iterable[dict]) -> int:
        """Write the rows (a list, or a generator that makes each row as it is asked for); returns how many."""
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        lines = [dumps(r, option=newline) for r in rows]
        self.fh.write(b"".join(lines))
        return len(lines)

    def write_split(self, rows: list[tuple[dict, dict]]) -> int:
        """Rows given as (head, tail) with heads shared by consecutive rows: each head is serialised once,
        and a line is the head's object spliced with the tail's — the bytes `write` writes for head | tail."""
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        lines = []
        last = prefix = None
        for head, tail in rows:
            if head is not last:
                last, prefix = head, dumps(head)[:-1] + b","
            lines.append(prefix + dumps(tail, option=newline)[1:])
        self.fh.write(b"".join(lines))
        return len(lines)

    def close(self) -> None:
        self.fh.close()


class ParquetWriter:
    """Every file it writes loads in `datasets.load_dataset("parquet", …)` and pandas: no map column, no struct
    without fields (`parquet_schema`)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        harm = schema.field(HARM_COLUMNS[0]).type if HARM_COLUMNS[0] in schema.names else None
        self.null_harm = harm is not None and pa.types.is_null(harm)

    def write(self, rows: Iterable[dict]) -> int:
        rows = rows if isinstance(rows, list) else list(rows)
        if self.null_harm:
            rows = [{**row, **dict.fromkeys(HARM_COLUMNS)} for row in rows]
        if rows:
            self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        return len(rows)

    def write_split(self, rows: list[tuple[dict, dict]]) -> int:
        return self.write([{**head, **tail, **_parquet_tail(tail)} for head, tail in rows])

    def close(self) -> None:
        self.writer.close()


HARM_COLUMNS = ("response_0_harm_category", "response_1_harm_category")


def _parquet_tail(tail: dict) -> dict:
    """A revision's timestamp as the string that JSONL holds (the Parquet column is a string), and its rubric
    answers as lists of {criterion, answer}."""
    out = {}
    at = tail.get("created_at")
    if isinstance(at, dt.datetime):
        out["created_at"] = at.isoformat()
    rubric = tail.get("rubric")
    if rubric is not None:
        out["rubric"] = {
            "version": rubric["version"],
            **{side: [{"criterion": k, "answer": v} for k, v in rubric[side].items()] for side in ("a", "b")},
        }
    return out


def _card_figures_beside(snapshot: DatasetSnapshot) -> Callable[[], dict[str, Any]]:
    """The dataset card's figures (label distribution, agreement with bootstrap intervals), read while the
    rows are: outside a caller's transaction, a thread asks for them on a connection of its
    own as the export starts, and the server computes them beside the export's queries (at a million
    judgments, 2–4 s of its CPU that used to follow the rows). Inside a caller's transaction (which another
    connection cannot see) they are read when asked for. Returns the function that waits
    for them."""
    caller = connections[DatasetSnapshot.objects.db]
    if caller.in_atomic_block:
        return lambda: card_figures(snapshot)

    def read() -> dict[str, Any]:
        try:
            return card_figures(snapshot)
        finally:
            connections.close_all()  # this thread's connection, back to the pool

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="card")
    future = pool.submit(read)
    pool.shutdown(wait=False)  # the thread ends with its one task
    return future.result


def card_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".card.md")


def export_snapshot(
    snapshot: DatasetSnapshot,
    out: str | Path,
    *,
    fmt: str,
    style: str = "conversational",
    margin: bool = False,
    compress: bool = False,
    parquet: bool = False,
    with_names: bool = False,
    actor=None,
    progress: Progress | None = None,
    via: str = "command",
    reward_fit: int | None = None,
) -> ExportResult:
    """Write `snapshot` to `out` in `fmt`, a dataset card beside it (`<out>.card.md`), and an audit event.

    `with_names` writes annotators' names in `raw` instead of per-export pseudonyms; callers allow it to
    admins only, and the audit event records it. Raises `ExportError` on bad options before writing.
    """
    opts = ExportOptions(fmt, style, margin, compress, parquet, with_names, reward_fit)
    rows_of = rows_for(snapshot, fmt)
    if rows_of is raw_ranking_rows and parquet:
        raise ExportError("a ranking project's raw export (its rankings) is JSONL only; choose JSONL")
    if reward_fit is not None:
        try:
            reward_terms.source().check(snapshot, reward_fit)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: JsonlWriter | ParquetWriter = (
        ParquetWriter(path, parquet_schema(opts, list(snapshot.project.harm_categories or [])))
        if parquet
        else JsonlWriter(path, compress)
    )
    stats: Counter = Counter()
    rows = done = 0
    total = snapshot.pair_count
    if fmt == "raw":  # its batches are of comparisons, with or without a pair
        total += int(snapshot.counts.get("contested", 0))
    figures = _card_figures_beside(snapshot)
    try:
        with RowStreams(DatasetSnapshot.objects.db) as read:
            write = writer.write_split if fmt == "raw" else writer.write
            for batch in rows_of(snapshot, opts, stats, read):
                rows += write(batch)
                done = min(total, done + PAIR_BATCH)
                if progress is not None:
                    progress(done, total)
    finally:
        writer.close()
    result = ExportResult(
        path=path,
        card_path=card_path_for(path),
        rows=rows,
        pairs=snapshot.pair_count,
        snapshot_id=snapshot.pk,
        content_hash=snapshot.content_hash,
        options=opts.as_dict(),
        stats=dict(stats),
    )
    result.card_path.write_text(
        render_card(
            snapshot,
            options=result.options,
            rows=rows,
            stats=result.stats,
            file_name=path.name,
            figures=figures(),
        ),
        encoding="utf-8",
    )
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else "",
        action="export.create",
        project=snapshot.project,
        target_type="snapshot",
        target_id=str(snapshot.pk),
        data={
            **opts.as_dict(),
            "via": via,
            "rows": rows,
            "file": path.name,
            "content_hash": snapshot.content_hash,
            "at": timezone.now().isoformat(),
        },
    )
    return result


# --- who may export, background jobs and expiring links ----------------------------------------------------

LINK_SALT = "arbiter.export.download"


def link_seconds() -> int:
    return int(getattr(settings, "ARBITER_EXPORT_LINK_SECONDS", 24 * 3600))


def can_export(user, project: Project) -> bool:
    """Admins, and researchers of a project that grants export (DESIGN.md roles)."""
    role = role_in(user, project)
    return role == "admin" or (role == "researcher" and project.researchers_can_export)


def export_file_name(job: ExportJob) -> str:
    opts = job.options
    ext = ".parquet" if opts.get("parquet") else ".jsonl.gz" if opts.get("gzip") else ".jsonl"
    return f"{job.project.slug}-snapshot{job.snapshot_id}-{job.format}-{job.pk}{ext}"


def check_export_options(fmt: str, options: dict[str, Any]) -> ExportOptions:
    """The options of an export job, checked (`ExportError` names the bad one)."""
    return ExportOptions(
        fmt,
        options.get("style", "conversational"),
        bool(options.get("margin")),
        bool(options.get("gzip")),
        bool(options.get("parquet")),
        bool(options.get("with_names")),
        options.get("reward_fit"),
    )


def start_export_job(
    *, project: Project, actor, snapshot: DatasetSnapshot, fmt: str, options: dict[str, Any]
) -> ExportJob:
    """Record an export job and queue it on the `cpu` queue once the row is committed (a broker that is down
    fails the job and raises `infra.jobs.QueueUnavailable`, see curation/job_leases.py)."""
    check_export_options(fmt, options)  # before anything is written
    if snapshot.project_id != project.pk:
        raise ExportError("the snapshot belongs to another project")
    with transaction.atomic():
        job = ExportJob.objects.create(
            project=project, snapshot=snapshot, created_by=actor, format=fmt, options=dict(options)
        )
        job_leases.send_after_commit(ExportJob, job.pk)
    return job


def run_export_job(job_id: int) -> ExportJob:
    """Claim a queued job (conditional UPDATE: the row is the queue), export under a lease
    (curation/job_leases.py), record the outcome while the lease is still ours."""
    owner = job_leases.new_owner()
    claimed = job_leases.claim(ExportJob, job_id, owner)
    job = ExportJob.objects.select_related("project", "snapshot", "created_by").get(pk=job_id)
    if not claimed:
        return job
    opts = job.options
    path = Path(settings.ARBITER_EXPORTS_DIR) / export_file_name(job)
    with job_leases.Heartbeat(ExportJob, job_id, owner) as lease:

        def progress(done: int, total: int) -> None:
            lease.check()
            ExportJob.objects.filter(pk=job_id).update(progress=done / total if total else 1.0)

        try:
            result = export_snapshot(
                job.snapshot,
                path,
                fmt=job.format,
                style=opts.get("style", "conversational"),
                margin=bool(opts.get("margin")),
                compress=bool(opts.get("gzip")),
                parquet=bool(opts.get("parquet")),
                with_names=bool(opts.get("with_names")),
                actor=job.created_by,
                progress=progress,
                via=opts.get("via", "page"),
                reward_fit=opts.get("reward_fit"),
            )
        except job_leases.LeaseLost:
            log.warning("export job %s: lease lost mid-run; stopped", job_id)
            job.refresh_from_db()
            return job
        except Exception as exc:
            job_leases.fail(ExportJob, job_id, owner, f"{type(exc).__name__}: {exc}")
            raise
    now = timezone.now()
    job_leases.finish(
        ExportJob,
        job_id,
        owner,
        ExportJob.Status.SUCCEEDED,
        progress=1.0,
        rows=result.rows,
        path=str(result.path),
        expires_at=now + dt.timedelta(seconds=link_seconds()),
    )
    job.refresh_from_db()
    return job


def download_token(job: ExportJob, user) -> str:
    """A signed token naming the job and the user; it expires after ARBITER_EXPORT_LINK_SECONDS."""
    return signing.TimestampSigner(salt=LINK_SALT).sign_object({"job": job.pk, "user": user.pk})


def job_for_token(token: str, user) -> ExportJob:
    """The job a download token names, or Http404 — when it is bad, expired, someone else's, or the user may no
    longer export from the project (permission is checked again on every use)."""
    try:
        data = signing.TimestampSigner(salt=LINK_SALT).unsign_object(token, max_age=link_seconds())
    except signing.BadSignature as exc:  # SignatureExpired is a BadSignature
        raise Http404("This download link is invalid or has expired") from exc
    if data.get("user") != user.pk:
        raise Http404("This download link is not yours")
    job = ExportJob.objects.select_related("project").filter(pk=data.get("job")).first()
    if (
        job is None
        or job.status != ExportJob.Status.SUCCEEDED
        or job.project.deleted_at is not None
        or not can_export(user, job.project)
        or not job.path
        or not Path(job.path).exists()
    ):
        raise Http404("No such export")
    return job
