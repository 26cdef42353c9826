"""Import of preference data: `trl`, `hh`, `safe-rlhf`, `generic`, `raw` (DESIGN.md "Formats").

`import_file` streams a `.jsonl`, `.jsonl.gz` or `.parquet` file, checks every line, and writes in batches
inside one transaction: a file with a bad line commits nothing (ImportFailed) unless `skip_invalid`, in which
case the good lines are committed and every skipped line is still reported. See `importers/README.md`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import threading
from collections.abc import Callable
from pathlib import Path

from django.db import connection, transaction

from annotate.gcpause import collector_paused, switch_interval
from curation.importers.formats import FORMATS, PARSERS, BadLine, ParseContext, ParsedPair
from curation.importers.readers import InvalidRecord, RecordReader
from curation.importers.report import ERROR_CAP, ImportFailed, ImportReport, LineError
from curation.importers.writer import Batch, SetupError, Writer
from projects.models import AuditEvent, Project

__all__ = [
    "ERROR_CAP",
    "FORMATS",
    "ImportFailed",
    "ImportReport",
    "LineError",
    "SetupError",
    "import_file",
]

BATCH_LINES = 10_000  # lines a batch; also the progress step
# The first batch is smaller, and each next one twice the last up to BATCH_LINES: the database starts on the
# first rows after a thousand lines are parsed instead of ten thousand, and parsing a batch (about half the
# time the server takes to write one of the same size) stays ahead of the writes all along.
FIRST_BATCH_LINES = 1_000
# While an import runs, a thread waiting for the GIL gets it after this long (Python's default: 5 ms). The
# writing thread waits on the server most of the time; when its socket is writable again it should not wait a
# whole default interval for the parsing thread while the server runs dry (measured: the server idle with the
# writer waiting for the GIL 4-9 % of an import's time at 5 ms, 3-5 % at 0.5 ms).
SWITCH_INTERVAL = 0.0005


def _read_batches(
    reader: RecordReader,
    parse,
    prepare: Callable[[list[ParsedPair]], Batch],
    ctx: ParseContext,
    report: ImportReport,
    skip_invalid: bool,
    out: queue.Queue,
    stop: threading.Event,
    gate: threading.Event,
) -> None:
    """The reader thread: every line checked and counted; good lines go out in batches, prepared for the
    writer (or, once the import is bound to fail, only counted). Ends with None, or with the exception that
    stopped it."""
    try:
        batch: list[ParsedPair] = []
        lines = 0
        size = min(FIRST_BATCH_LINES, BATCH_LINES)
        for lineno, obj in reader:
            if not gate.is_set():  # the writing thread's turn (Writer._reader)
                gate.wait()
            if stop.is_set():
                return
            report.total_lines += 1
            lines += 1
            if isinstance(obj, InvalidRecord):
                report.add_error(lineno, None, obj.message)
            else:
                try:
                    pairs = parse(obj, lineno, ctx)
                except BadLine as e:
                    report.add_error(lineno, e.field, e.message)
                else:
                    report.ok_lines += 1
                    if skip_invalid or not report.bad_lines:
                        batch.extend(pairs)
                    elif batch:
                        batch = []  # nothing will be committed: drop what was gathered
            if lines >= size:
                out.put((prepare(batch), reader.fraction()))
                batch, lines = [], 0
                size = min(2 * size, BATCH_LINES)
        out.put((prepare(batch), reader.fraction()))
        out.put(None)
    except BaseException as e:  # noqa: BLE001 - handed to the writing thread, which raises it
        out.put(e)


def import_file(
    path: str | os.PathLike,
    *,
    project: Project,
    fmt: str,
    source: str | None = None,
    skip_invalid: bool = False,
    progress: Callable[[float], None] | None = None,
    actor=None,
    add_harm_categories: bool = False,
    generic_pairs: int | None = None,
    seed: int = 0,
) -> ImportReport:
    """Import one file into `project`. Raises ImportFailed (nothing committed) when a line is bad and not
    `skip_invalid`; ValueError for an unknown format or a clash that stops the import before it starts."""
    if fmt not in PARSERS:
        raise ValueError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    if generic_pairs is not None and generic_pairs < 1:
        raise ValueError("pairs must be at least 1")
    source = (source or fmt).strip() or fmt
    reader = RecordReader(path)
    report = ImportReport(format=fmt)
    ctx = ParseContext(
        harm_categories=list(project.harm_categories or []),
        add_harm_categories=add_harm_categories,
        generic_pairs=generic_pairs,
        rng=random.Random(seed),
    )
    parse = PARSERS[fmt]

    # The cycle collector rests while lines are parsed and written (annotate/gcpause.py).
    with collector_paused(), switch_interval(SWITCH_INTERVAL), transaction.atomic():
        writer = Writer(project=project, fmt=fmt, source=source, seed=seed, report=report)
        writer.setup()
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                # A lost import is simply re-run (it is idempotent); no need to wait for the WAL flush.
                cur.execute("SET LOCAL synchronous_commit = off")
                # The look-ups probe a unique index once per key; their cost estimates (no statistics yet
                # for the rows this transaction adds) would otherwise buy a JIT compile per batch.
                cur.execute("SET LOCAL jit = off")
                # Rows over ~2 kB are compressed as they are stored: lz4 where the server was built with it
                # (readers need nothing), about five times cheaper than the default pglz for the server.
                cur.execute(
                    "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings"
                    " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
                )
        # Reading and checking lines runs in a thread while this one writes the previous batch: the
        # database works on its own core while Python parses. The queue holds at most two batches.
        batches: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()
        writer.gate = gate = threading.Event()
        gate.set()
        parser = threading.Thread(
            target=_read_batches,
            args=(reader, parse, writer.prepare, ctx, report, skip_invalid, batches, stop, gate),
            name="import-reader",
            daemon=True,
        )
        parser.start()
        try:
            while True:
                item = batches.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                batch, fraction = item
                if batch.pairs and not (report.bad_lines and not skip_invalid):
                    writer.write(batch)
                if progress is not None:
                    progress(fraction)
        finally:
            stop.set()
            gate.set()
            while parser.is_alive():  # unblock a reader waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    batches.get(timeout=0.1)
            parser.join()
        for err in writer.rejected:
            report.reject(err.line, err.field, err.message)
        report.errors.sort(key=lambda e: e.line)
        if report.bad_lines and not skip_invalid:
            raise ImportFailed(report)
        writer.teardown()
        if ctx.added_categories:
            project.harm_categories = [*(project.harm_categories or []), *ctx.added_categories]
            project.save(update_fields=["harm_categories"])
            report.notes.append(f"added harm categories: {', '.join(ctx.added_categories)}")
        if ctx.rubric_rows:
            report.notes.append(
                f"{ctx.rubric_rows} row(s) carried a rubric object: its shape was checked, the answers were not "
                "stored (rubric answers are imported by the rubrics app)"
            )
        AuditEvent.objects.create(
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            actor_name=getattr(actor, "username", "") or "",
            action="import",
            project=project,
            target_type="file",
            target_id=Path(path).name[:60],
            data=report.summary() | {"committed": True, "source": source},
        )
    report.committed = True
    if progress is not None:
        progress(1.0)
    return report
