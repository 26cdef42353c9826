"""Reading rows as streams: batches merged by comparison, and an export that leaves the caller's connection
free (a job's progress commits while the rows are read)."""

from __future__ import annotations

import pytest
from django.db import connections

from annotate import exporters
from annotate.exporters import export_snapshot
from annotate.fastrows import ByComparison
from annotate.models import DatasetSnapshot
from annotate.snapshots import create_snapshot
from tests.factories import add_judgment, crowd_annotator, make_comparison


def test_rows_sorted_by_comparison_are_handed_out_batch_by_batch_across_chunks():
    chunks = iter([[(1, "a"), (1, "b"), (2, "c")], [(2, "d"), (5, "e")], [(5, "f"), (9, "g")]])
    rows = ByComparison(chunks)
    assert rows.upto(1) == {1: [(1, "a"), (1, "b")]}
    assert rows.upto(4) == {2: [(2, "c"), (2, "d")]}
    assert rows.upto(6) == {5: [(5, "e"), (5, "f")]}
    assert rows.upto(8) == {}
    assert rows.upto(100) == {9: [(9, "g")]}
    assert rows.upto(200) == {}


@pytest.mark.django_db(transaction=True)
def test_progress_written_during_an_export_is_committed_while_it_runs(project, tmp_path, monkeypatch):
    annotator = crowd_annotator(project, "x")
    for i in range(4):
        add_judgment(make_comparison(project, f"p{i}", f"a{i}", f"b{i}"), annotator, preference=1 + i % 3)
    snapshot = create_snapshot(project=project, name="before")
    monkeypatch.setattr(exporters, "PAIR_BATCH", 1)
    observer = connections.create_connection("default")
    seen = []

    def progress(done: int, total: int) -> None:
        DatasetSnapshot.objects.filter(pk=snapshot.pk).update(name=f"{done}/{total}")
        with observer.cursor() as cur:
            cur.execute("SELECT name FROM annotate_datasetsnapshot WHERE id = %s", [snapshot.pk])
            seen.append(cur.fetchone()[0])

    try:
        result = export_snapshot(snapshot, tmp_path / "raw.jsonl", fmt="raw", progress=progress)
    finally:
        observer.close()
    assert result.rows == 4
    assert seen == ["1/4", "2/4", "3/4", "4/4"]
