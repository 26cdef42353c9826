"""Import of preference data: `trl`, `hh`, `safe-rlhf`, `generic`, `raw` (DESIGN.md "Formats").

`import_file` streams a `.jsonl`, `.jsonl.gz` or `.parquet` file, checks every line, and writes in batches
inside one transaction: a file with a bad line commits nothing (ImportFailed) unless `skip_invalid`, in which
case the good lines are committed and every skipped line is still reported. See `importers/README.md`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.db import connection, transaction

from annotate.models import AuditEvent, Project

from .formats import FORMATS, PARSERS, BadLine, ParseContext, ParsedPair
from .readers import InvalidRecord, RecordReader
from .writer import SetupError, Writer

__all__ = [
    "ERROR_CAP",
    "FORMATS",
    "ImportFailed",
    "ImportReport",
    "LineError",
    "SetupError",
    "import_file",
]

ERROR_CAP = 1000
BATCH_LINES = 10_000
PROGRESS_EVERY = 5_000  # lines between progress calls while only validating


@dataclass
class LineError:
    line: int
    field: str | None
    message: str


@dataclass
class ImportReport:
    format: str
    total_lines: int = 0
    ok_lines: int = 0
    bad_lines: int = 0
    errors: list[LineError] = field(default_factory=list)  # capped at ERROR_CAP; bad_lines stays exact
    items_created: int = 0
    responses_created: int = 0
    comparisons_created: int = 0
    judgments_created: int = 0
    duplicates: int = 0  # lines (or generic pairs) that added nothing because already present
    committed: bool = False
    revisions_created: int = 0  # raw: judgment revisions written
    notes: list[str] = field(default_factory=list)

    def add_error(self, line: int, field_name: str | None, message: str) -> None:
        self.bad_lines += 1
        if len(self.errors) < ERROR_CAP:
            self.errors.append(LineError(line, field_name, message))

    def reject(self, line: int, field_name: str | None, message: str) -> None:
        """A line that parsed but clashes with stored records: it turns from good to bad."""
        self.ok_lines -= 1
        self.add_error(line, field_name, message)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        """as_dict without the error list (for audit events and job rows)."""
        data = self.as_dict()
        data["errors_shown"] = len(data.pop("errors"))
        return data


class ImportFailed(Exception):  # noqa: N818 - the name other parts call
    """Bad lines and not skip_invalid: nothing was committed."""

    def __init__(self, report: ImportReport):
        super().__init__(f"{report.bad_lines} bad line(s); nothing imported")
        self.report = report


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

    def tick() -> None:
        if progress is not None:
            progress(reader.fraction())

    with transaction.atomic():
        writer = Writer(project=project, fmt=fmt, source=source, seed=seed, report=report)
        writer.setup()
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                # A lost import is simply re-run (it is idempotent); no need to wait for the WAL flush.
                cur.execute("SET LOCAL synchronous_commit = off")
        batch: list[ParsedPair] = []
        batch_lines = 0
        for lineno, obj in reader:
            report.total_lines += 1
            if isinstance(obj, InvalidRecord):
                report.add_error(lineno, None, obj.message)
                continue
            try:
                pairs = parse(obj, lineno, ctx)
            except BadLine as e:
                report.add_error(lineno, e.field, e.message)
                continue
            report.ok_lines += 1
            if report.bad_lines and not skip_invalid:
                # Nothing will be committed: only check the rest, to report every bad line.
                if report.total_lines % PROGRESS_EVERY == 0:
                    tick()
                continue
            batch.extend(pairs)
            batch_lines += 1
            if batch_lines >= BATCH_LINES:
                writer.write(batch)
                batch, batch_lines = [], 0
                tick()
        if not (report.bad_lines and not skip_invalid):
            writer.write(batch)
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
