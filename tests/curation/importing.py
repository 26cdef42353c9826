"""Helpers shared by the import tests: fixture paths, row counts, converted copies of fixtures."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

from annotate.models import Comparison, Item, Judgment, JudgmentRevision, Response
from projects.models import Annotator, AuditEvent, Project

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
IMPORT_FIXTURES = FIXTURES / "import"
HH_SLICE = FIXTURES / "hh_harmless_slice.jsonl.gz"


def fixture(name: str) -> Path:
    return IMPORT_FIXTURES / name


def counts(project: Project) -> dict[str, int]:
    return {
        "items": Item.objects.filter(project=project).count(),
        "responses": Response.objects.filter(item__project=project).count(),
        "comparisons": Comparison.objects.filter(project=project).count(),
        "judgments": Judgment.objects.filter(project=project).count(),
        "revisions": JudgmentRevision.objects.filter(judgment__project=project).count(),
        "annotators": Annotator.objects.filter(project=project).count(),
        "imports": AuditEvent.objects.filter(project=project, action="import").count(),
    }


def error_lines(report) -> list[tuple[int, str | None]]:
    return [(e.line, e.field) for e in report.errors]


def gzipped(src: Path, tmp: Path) -> Path:
    out = tmp / (src.name + ".gz")
    with open(src, "rb") as fin, gzip.open(out, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return out


def parquet_of(rows: list[dict], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
    return path


def read_rows(src: Path) -> list[dict]:
    return [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
