"""Snapshots freeze consensus pairs with counts, filters and a content hash; the `snapshot` command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Gold
from curation.models import DatasetSnapshot, SnapshotPair
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
    }
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
