"""Snapshots freeze consensus pairs with counts, filters and a content hash; the `snapshot` command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Gold
from curation.exporters import ExportError
from curation.models import DatasetSnapshot, ExportJob, SnapshotJob, SnapshotPair
from curation.snapshot_jobs import run_snapshot_job, start_snapshot_job
from curation.snapshots import create_snapshot
from insights.consensus import ConsensusError
from projects.models import AuditEvent
from tests.factories import add_judgment, crowd_annotator, make_comparison


@pytest.fixture
def labelled(project):
    x, y, z = (crowd_annotator(project, n) for n in ("x", "y", "z"))
    src = crowd_annotator(project, "trl")
    c1 = make_comparison(project, "p1", "a1", "b1")  # B 2-1, margins 3 and 1
    c2 = make_comparison(project, "p2", "a2", "b2")  # split
    c3 = make_comparison(project, "p3", "a3", "b3")  # source label only: A
    c4 = make_comparison(project, "p4", "a4", "b4")  # gold B
    add_judgment(c1, x, preference=3, a_safe=True, b_safe=True)
    add_judgment(c1, y, preference=1)
    add_judgment(c1, z, preference=-2)
    add_judgment(c2, x, preference=1)
    add_judgment(c2, y, preference=-1)
    add_judgment(c3, src, choice="a", imported=True, is_source=True)
    Gold.objects.create(comparison=c4, choice="b")
    return project, (c1, c2, c3, c4), (x, y, z)


def test_snapshot_freezes_the_consensus_pairs_with_counts(labelled, researcher):
    project, (c1, c2, c3, c4), _ = labelled
    snap = create_snapshot(project=project, actor=researcher, name="first")
    pairs = {p.comparison_id: p for p in snap.pairs.all()}
    assert set(pairs) == {c1.pk, c3.pk, c4.pk}
    assert (pairs[c1.pk].chosen, pairs[c1.pk].votes, pairs[c1.pk].a_safe) == ("b", 3, True)
    assert pairs[c1.pk].margin == pytest.approx(2 / 3)
    assert pairs[c1.pk].agreement == pytest.approx(2 / 3)
    assert pairs[c3.pk].label_origin == "source"
    assert pairs[c4.pk].label_origin == "gold"
    assert snap.pair_count == 3
    assert snap.counts == {
        "comparisons": 4,
        "pairs": 3,
        "no_consensus": 1,
        "tie_override": 0,
        "below_min_agreement": 0,
        "excluded_gold": 0,
        "by_origin": {"gold": 1, "source": 1, "vote": 1},
        "chosen": {"a": 1, "b": 2},
        "excluded_judgments": {},
        "contested": 1,
    }
    assert list(snap.contested.values_list("comparison_id", "status")) == [(c2.pk, "no_consensus")]
    assert snap.filters == {"exclude": [], "min_agreement": None}
    assert len(snap.content_hash) == 64
    event = AuditEvent.objects.get(action="snapshot.create")
    assert event.actor == researcher and event.target_id == str(snap.pk)
    assert event.data["content_hash"] == snap.content_hash


def test_filters_are_recorded_and_applied(labelled):
    project, (c1, c2, c3, c4), _ = labelled
    snap = create_snapshot(project=project, exclude="imported,gold", min_agreement=0.7)
    assert snap.filters == {"exclude": ["gold", "imported"], "min_agreement": 0.7}
    assert snap.pair_count == 0
    assert snap.counts["below_min_agreement"] == 1
    assert snap.counts["excluded_gold"] == 1
    assert snap.counts["excluded_judgments"] == {"imported": 1}


def test_same_data_gives_the_same_hash_and_changes_change_it(labelled):
    project, (c1, c2, c3, c4), (x, y, z) = labelled
    h1 = create_snapshot(project=project, name="a").content_hash
    h2 = create_snapshot(project=project, name="b").content_hash
    assert h1 == h2
    assert create_snapshot(project=project, exclude=["imported"]).content_hash != h1
    add_judgment(c2, z, preference=2)  # c2 gains a consensus
    h3 = create_snapshot(project=project).content_hash
    assert h3 != h1
    assert DatasetSnapshot.objects.count() == 4


def test_the_hash_is_about_content_not_database_ids(project, other_project):
    for p in (project, other_project):
        ann = crowd_annotator(p, "x")
        make_comparison(p, "filler", "f1", "f2") if p == other_project else None
        add_judgment(make_comparison(p, "p", "a", "b"), ann, preference=-2)
    assert (
        create_snapshot(project=project).content_hash == create_snapshot(project=other_project).content_hash
    )


def test_bad_options_write_nothing(labelled):
    project, *_ = labelled
    with pytest.raises(ConsensusError):
        create_snapshot(project=project, exclude="everything")
    with pytest.raises(ConsensusError):
        create_snapshot(project=project, min_agreement=1.5)
    assert not DatasetSnapshot.objects.exists() and not SnapshotPair.objects.exists()


def test_a_snapshot_job_checks_its_options_at_once_and_queues_nothing_bad(
    labelled, researcher, django_capture_on_commit_callbacks
):
    project, *_ = labelled
    for bad in ({"exclude": "everything"}, {"min_agreement": 1.5}, {"axis": "sideways"}, {"name": "n" * 201}):
        with django_capture_on_commit_callbacks() as queued, pytest.raises(ConsensusError):
            start_snapshot_job(project=project, actor=researcher, **bad)
        assert queued == []
    assert not SnapshotJob.objects.exists() and not DatasetSnapshot.objects.exists()
    with django_capture_on_commit_callbacks() as queued:
        job = start_snapshot_job(project=project, actor=researcher, exclude="gold", name="job")
    assert len(queued) == 1  # the task is sent once the row is committed
    assert (job.status, job.snapshot, job.options["exclude"]) == ("queued", None, ["gold"])
    assert not DatasetSnapshot.objects.exists()  # nothing frozen in the caller


def test_a_snapshot_job_freezes_the_snapshot_and_records_it(labelled, researcher):
    project, *_ = labelled
    job = start_snapshot_job(project=project, actor=researcher, exclude=["gold"], name="job")
    done = run_snapshot_job(job.pk)
    assert (done.status, done.error) == ("succeeded", "")
    assert done.started_at is not None and done.finished_at is not None
    snap = done.snapshot
    direct = create_snapshot(project=project, exclude=["gold"])
    assert (snap.name, snap.created_by, snap.pair_count) == ("job", researcher, 2)
    assert snap.content_hash == direct.content_hash
    event = AuditEvent.objects.get(action="snapshot.create", target_id=str(snap.pk))
    assert event.actor == researcher and event.data["name"] == "job"
    assert run_snapshot_job(job.pk).snapshot == snap  # a redelivered task does nothing
    assert DatasetSnapshot.objects.count() == 2


def test_a_failing_snapshot_job_records_its_message(labelled, researcher):
    project, *_ = labelled
    job = SnapshotJob.objects.create(project=project, created_by=researcher, options={"aggregation": "vote"})
    failed = run_snapshot_job(job.pk)
    assert failed.status == "failed" and "unknown aggregation 'vote'" in failed.error
    assert failed.snapshot is None and not DatasetSnapshot.objects.exists()
    project.deleted_at = project.created_at
    project.save()
    gone = run_snapshot_job(SnapshotJob.objects.create(project=project, created_by=researcher).pk)
    assert (gone.status, gone.error) == ("failed", "the project was deleted")


def test_a_snapshot_job_from_the_export_page_starts_its_export(labelled, admin_user, researcher):
    project, *_ = labelled
    then = {"format": "trl", "options": {"style": "text", "via": "page"}}
    with pytest.raises(ExportError):
        start_snapshot_job(project=project, actor=admin_user, then_export={"format": "csv", "options": {}})
    done = run_snapshot_job(start_snapshot_job(project=project, actor=admin_user, then_export=then).pk)
    export = ExportJob.objects.get()
    assert done.export_job == export and export.snapshot == done.snapshot
    assert (export.status, export.format, export.options["style"], export.created_by) == (
        "queued",
        "trl",
        "text",
        admin_user,
    )
    # The author lost the right to export (researchers export only where the project grants it).
    refused = run_snapshot_job(start_snapshot_job(project=project, actor=researcher, then_export=then).pk)
    assert refused.status == "succeeded" and refused.snapshot is not None
    assert "export was not started" in refused.error and ExportJob.objects.count() == 1


def test_snapshot_command_prints_the_id(labelled):
    project, *_ = labelled
    out = StringIO()
    call_command("snapshot", "--project", project.slug, "--axis", "overall", "--exclude", "gold", stdout=out)
    snap = DatasetSnapshot.objects.get()
    assert out.getvalue().strip() == str(snap.pk)
    assert snap.pair_count == 2


def test_snapshot_command_json_and_errors(labelled):
    project, *_ = labelled
    out = StringIO()
    call_command(
        "snapshot", "--project", project.slug, "--aggregate", "mean", "--name", "m", "--json", stdout=out
    )
    data = json.loads(out.getvalue())
    assert data["aggregation"] == "mean" and data["name"] == "m" and data["pair_count"] == 3
    with pytest.raises(CommandError, match="no project"):
        call_command("snapshot", "--project", "nope")
    with pytest.raises(CommandError, match="unknown exclude"):
        call_command("snapshot", "--project", project.slug, "--exclude", "bogus")
