"""Import of preference data: `trl`, `hh`, `safe-rlhf`, `generic`, `raw` (DESIGN.md "Formats").

`import_file` streams a `.jsonl`, `.jsonl.gz` or `.parquet` file, checks every line, and writes in batches
inside one transaction: a file with a bad line commits nothing (ImportFailed) unless `skip_invalid`, in which
case the good lines are committed and every skipped line is still reported. See `importers/README.md`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from django.db import connection, transaction

from curation.importers.formats import FORMATS, PARSERS, BadLine, ParseContext, ParsedPair
from curation.importers.readers import InvalidRecord, RecordReader
from curation.importers.report import ERROR_CAP, ImportFailed, ImportReport, LineError
from curation.importers.writer import SetupError, Writer
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
    ranking_project = project.task_kind == Project.TaskKind.RANKING
    if ranking_project and generic_pairs is not None:
        raise ValueError(
            "a ranking project keeps every pair of an item's responses (its rankings imply them all): "
            "leave the number of pairs unset"
        )
    source = (source or fmt).strip() or fmt
    reader = RecordReader(path)
    report = ImportReport(format=fmt)
    ctx = ParseContext(
        harm_categories=list(project.harm_categories or []),
        add_harm_categories=add_harm_categories,
        generic_pairs=generic_pairs,
        rng=random.Random(seed),
        ranking_project=ranking_project,
    )
    parse = PARSERS[fmt]

    # One transaction, one cursor, one thread: a batch of lines is read and checked, then written, then the
    # next; the server runs a batch's last statements while the next one is read (`Writer.sync` waits for
    # them). Once a line is bad (and not `skip_invalid`) later lines are only checked: nothing will commit.
    with transaction.atomic(), connection.cursor() as cur, ExitStack() as tail:
        writer = Writer(
            cur,
            project=project,
            fmt=fmt,
            source=source,
            seed=seed,
            report=report,
            tail=tail,
            progress=progress,
        )
        writer.setup()
        batch: list[ParsedPair] = []
        lines = 0
        for lineno, obj in reader:
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
            if lines >= BATCH_LINES:
                _write(writer, batch, report, skip_invalid, reader.fraction())
                batch, lines = [], 0
        _write(writer, batch, report, skip_invalid, reader.fraction())
        writer.sync()
        for err in writer.rejected:
            report.reject(err.line, err.field, err.message)
        report.errors.sort(key=lambda e: e.line)
        if report.bad_lines and not skip_invalid:
            raise ImportFailed(report)
        writer.finish()
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


def _write(
    writer: Writer, batch: list[ParsedPair], report: ImportReport, skip_invalid: bool, fraction: float
):
    writer.write(batch if skip_invalid or not report.bad_lines else [], fraction)
