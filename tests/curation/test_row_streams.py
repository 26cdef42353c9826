"""Reading rows as streams: batches merged by comparison, every stream on one snapshot, and an export that
leaves the caller's connection free (a job's progress commits while the rows are read)."""

from __future__ import annotations

import pytest
from django.db import connections

from curation import exporters
from curation.exporters import ByComparison, RowStreams, export_snapshot
from curation.models import ExportJob
from curation.snapshots import create_snapshot
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
    job = ExportJob.objects.create(project=project, snapshot=snapshot, format="raw")
    monkeypatch.setattr(exporters, "PAIR_BATCH", 1)
    observer = connections.create_connection("default")
    seen = []

    def progress(done: int, total: int) -> None:  # as run_export_job writes it (a frozen snapshot cannot be)
        ExportJob.objects.filter(pk=job.pk).update(error=f"{done}/{total}")
        with observer.cursor() as cur:
            cur.execute("SELECT error FROM annotate_exportjob WHERE id = %s", [job.pk])
            seen.append(cur.fetchone()[0])

    try:
        result = export_snapshot(snapshot, tmp_path / "raw.jsonl", fmt="raw", progress=progress)
    finally:
        observer.close()
    assert result.rows == 4
    assert seen == ["1/4", "2/4", "3/4", "4/4"]


@pytest.mark.django_db(transaction=True)
def test_every_stream_reads_the_state_of_the_database_when_the_export_began(project, tmp_path, monkeypatch):
    """The pairs, the revisions and the rubric answers are read on a connection of the export's own, in one
    REPEATABLE READ transaction: an answer committed after the first stream began, before the rubric
    answers' stream is made, is not in the file; nor is a revision committed mid-export."""
    from annotate.models import JudgmentRevision
    from rubrics.models import CriterionAnswer

    annotator = crowd_annotator(project, "x")
    judgments = [
        add_judgment(make_comparison(project, f"p{i}", f"a{i}", f"b{i}"), annotator, preference=1 + i % 3)
        for i in range(4)
    ]
    snapshot = create_snapshot(project=project, name="before")
    monkeypatch.setattr(exporters, "PAIR_BATCH", 1)
    first, last = judgments[0].revisions.get(), judgments[-1]

    def has_rubrics(snapshot) -> bool:  # asked between the revisions' stream and the answers' one
        CriterionAnswer.objects.create(revision=first, side="a", criterion_key="kind", answer="yes")
        return True

    def progress(done: int, total: int) -> None:
        if done == 1:  # committed at once: the caller's connection is in autocommit
            JudgmentRevision.objects.create(
                judgment=last, number=2, created_at=last.created_at, preference=-3, choice="a"
            )

    monkeypatch.setattr(exporters, "_has_rubrics", has_rubrics)
    result = export_snapshot(snapshot, tmp_path / "raw.jsonl", fmt="raw", progress=progress)
    assert CriterionAnswer.objects.count() == 1
    assert JudgmentRevision.objects.filter(judgment=last).count() == 2
    lines = (tmp_path / "raw.jsonl").read_bytes().splitlines()
    assert result.rows == len(lines) == 4
    assert all(b'"rubric":null' in line and b'"revision":1' in line for line in lines)


@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_an_export_that_fails_before_reading_a_stream_lets_go_of_it(project):
    """A stream made and never read (the export failed first) is closed with its query cancelled: the
    error comes out, nothing waits on the connection, and the next export reads as before."""
    from annotate.models import Judgment

    annotator = crowd_annotator(project, "x")
    for i in range(4):
        add_judgment(make_comparison(project, f"p{i}", f"a{i}", f"b{i}"), annotator, preference=1)
    ids = Judgment.objects.order_by("id").values_list("id")
    with pytest.raises(RuntimeError, match="disk full"), RowStreams() as read:
        read.stream(ids, chunk=1)  # more rows than the first chunk: the query is still sending
        raise RuntimeError("disk full")
    with RowStreams() as read:
        assert [r for chunk in read.stream(ids, chunk=3) for r in chunk] == list(ids)
