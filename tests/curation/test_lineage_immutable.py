"""Lineage cannot change: the database refuses UPDATE and DELETE of frozen snapshots, their pairs and contested
comparisons, model versions (but activation) and succeeded runs' figures; the admin shows them read-only;
erasure and deleting a login still work."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from annotate.models import Judgment
from curation.exporters import export_snapshot
from curation.models import DatasetSnapshot, SnapshotContested, SnapshotPair
from curation.snapshots import create_snapshot
from curation.triggers import PURGE_SQL
from projects.models import AuditEvent
from rewardtrain import services
from rewardtrain.models import ModelVersion, TrainingRun
from tests.conftest import login, make_user
from tests.factories import add_judgment, crowd_annotator, make_comparison

pytestmark = pytest.mark.django_db


def _refused(fn, match: str) -> None:
    with pytest.raises(IntegrityError, match=match), transaction.atomic():
        fn()


def _sql(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.fixture
def frozen(project, researcher):
    x, y = crowd_annotator(project, "x"), crowd_annotator(project, "y")
    agreed = make_comparison(project, "p1", "a1", "b1")
    split = make_comparison(project, "p2", "a2", "b2")
    add_judgment(agreed, x, preference=2)
    add_judgment(agreed, y, preference=1)
    add_judgment(split, x, preference=1)
    add_judgment(split, y, preference=-1)
    return create_snapshot(project=project, actor=researcher)


@pytest.fixture
def version(project, frozen):
    run = TrainingRun.objects.create(
        project=project,
        snapshot=frozen,
        base_model="tiny",
        config={"seed": 0},
        status=TrainingRun.Status.SUCCEEDED,
        metrics={"eval_accuracy": 0.5},
    )
    return ModelVersion.objects.create(
        run=run,
        project=project,
        path="/m",
        snapshot_hash=frozen.content_hash,
        base_model="tiny",
        metrics={"eval_accuracy": 0.5},
    )


def test_a_frozen_snapshot_refuses_update_and_delete(frozen):
    snapshots = DatasetSnapshot.objects.filter(pk=frozen.pk)
    for change in ({"content_hash": "f" * 64}, {"pair_count": 7}, {"counts": {}}, {"name": "renamed"}):
        _refused(lambda change=change: snapshots.update(**change), "snapshot is frozen")
    _refused(lambda: snapshots.delete(), "frozen")
    _refused(
        lambda: _sql("UPDATE annotate_datasetsnapshot SET pair_count = 0 WHERE id = %s", [frozen.pk]),
        "frozen",
    )
    _refused(lambda: _sql("DELETE FROM annotate_datasetsnapshot WHERE id = %s", [frozen.pk]), "frozen")
    frozen.refresh_from_db()
    assert frozen.pair_count == 1 and len(frozen.content_hash) == 64
    frozen.save()  # saving what is stored changes nothing, and is allowed


def test_snapshot_pairs_and_contested_comparisons_refuse_update_delete_and_insert(frozen, project):
    pair = frozen.pairs.get()
    contested = frozen.contested.get()
    match = "cannot be changed, deleted or added"
    _refused(lambda: SnapshotPair.objects.filter(pk=pair.pk).update(chosen="a"), match)
    _refused(lambda: SnapshotPair.objects.filter(pk=pair.pk).delete(), match)
    _refused(lambda: _sql("UPDATE annotate_snapshotpair SET margin = 1 WHERE id = %s", [pair.pk]), match)
    _refused(lambda: _sql("DELETE FROM annotate_snapshotpair WHERE snapshot_id = %s", [frozen.pk]), match)
    _refused(lambda: SnapshotContested.objects.filter(pk=contested.pk).update(status="ok"), match)
    _refused(lambda: SnapshotContested.objects.filter(pk=contested.pk).delete(), match)
    other = make_comparison(project, "p3", "a3", "b3")
    _refused(
        lambda: SnapshotPair.objects.create(
            snapshot=frozen, comparison=other, chosen="a", margin=1, votes=1, agreement=1
        ),
        match,
    )
    _refused(lambda: SnapshotContested.objects.create(snapshot=frozen, comparison=other, status="x"), match)
    assert frozen.pairs.count() == 1 and frozen.contested.count() == 1
    assert (pair.chosen, pair.margin) == SnapshotPair.objects.values_list("chosen", "margin").get()


def test_model_versions_refuse_all_but_activation(version):
    versions = ModelVersion.objects.filter(pk=version.pk)
    match = "model version is part of a lineage"
    for change in (
        {"metrics": {"eval_accuracy": 1.0}},
        {"snapshot_hash": "x"},
        {"path": "/elsewhere"},
        {"base_model": "big"},
        {"config": {"seed": 1}},
        {"rubric_versions": [{"id": 1}]},
        {"eval_set": {"kind": "evaluation file"}},
    ):
        _refused(lambda change=change: versions.update(**change), match)
    _refused(lambda: versions.delete(), match)
    _refused(lambda: _sql("DELETE FROM rewardtrain_modelversion WHERE id = %s", [version.pk]), match)
    services.activate_model_version(version=version)
    version.refresh_from_db()
    assert version.is_active and version.metrics == {"eval_accuracy": 0.5}


def test_a_succeeded_runs_lineage_and_metrics_are_refused_changes(version):
    runs = TrainingRun.objects.filter(pk=version.run_id)
    match = "succeeded training run"
    for change in ({"metrics": {}}, {"snapshot": None}, {"config": {"seed": 1}}, {"status": "failed"}):
        _refused(lambda change=change: runs.update(**change), match)
    _refused(lambda: _sql("DELETE FROM rewardtrain_trainingrun WHERE id = %s", [version.run_id]), match)
    runs.update(progress={"phase": "done"})  # what is not lineage may still be written


@pytest.mark.django_db(transaction=True)  # real transactions: the setting lives as long as one
def test_a_transaction_that_asks_to_purge_lineage_may_delete_it_but_never_change_it(frozen, version):
    with transaction.atomic():
        _sql(PURGE_SQL, [])
        _refused(lambda: DatasetSnapshot.objects.filter(pk=frozen.pk).update(pair_count=9), "frozen")
        _refused(lambda: ModelVersion.objects.filter(pk=version.pk).update(path="/x"), "lineage")
    assert DatasetSnapshot.objects.filter(pk=frozen.pk, pair_count=1).exists()  # the setting ended with it
    _refused(lambda: _sql("DELETE FROM annotate_snapshotpair WHERE snapshot_id = %s", [frozen.pk]), "deleted")
    with transaction.atomic():
        _sql(PURGE_SQL, [])
        ModelVersion.objects.filter(pk=version.pk).delete()
        TrainingRun.objects.filter(pk=version.run_id).delete()
        DatasetSnapshot.objects.filter(pk=frozen.pk).delete()  # with its pairs and contested comparisons
    assert not SnapshotPair.objects.exists() and not SnapshotContested.objects.exists()


def test_the_admin_shows_lineage_read_only(client, frozen, version):
    boss = make_user("root", is_staff=True, is_superuser=True)
    login(client, boss)
    for url, saved in (
        (f"/admin/curation/datasetsnapshot/{frozen.pk}/change/", frozen.content_hash),
        (f"/admin/rewardtrain/modelversion/{version.pk}/change/", version.snapshot_hash),
    ):
        page = client.get(url)
        assert page.status_code == 200
        text = page.content.decode()
        assert saved in text  # shown
        assert 'name="_save"' not in text and "Delete" not in text  # not editable
        assert client.post(url, {"content_hash": "0" * 64, "metrics": "{}"}).status_code == 403
    for url in ("/admin/curation/datasetsnapshot/add/", "/admin/rewardtrain/modelversion/add/"):
        assert client.get(url).status_code == 403
    assert (
        client.post(f"/admin/curation/datasetsnapshot/{frozen.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert DatasetSnapshot.objects.filter(pk=frozen.pk, content_hash=frozen.content_hash).exists()


def test_deleting_the_snapshots_creator_only_clears_created_by(frozen, researcher):
    User.objects.filter(pk=researcher.pk).delete()
    frozen.refresh_from_db()
    assert frozen.created_by_id is None and len(frozen.content_hash) == 64


def test_erasure_leaves_frozen_snapshots_as_they_are_and_says_so(project, frozen, tmp_path):
    before = (frozen.content_hash, list(frozen.pairs.values_list("comparison_id", "chosen", "margin")))
    Judgment.objects.filter(annotator__name="x").update(justification="x wrote this")
    out = StringIO()
    call_command("erase_annotator", "--project", project.slug, "--annotator", "x", stdout=out)
    assert "Frozen snapshots: unchanged" in out.getvalue()
    event = AuditEvent.objects.get(action="annotator.erase")
    assert event.data["frozen_snapshots"].startswith("unchanged")
    frozen.refresh_from_db()
    assert (
        frozen.content_hash,
        list(frozen.pairs.values_list("comparison_id", "chosen", "margin")),
    ) == before
    text = export_snapshot(frozen, tmp_path / "raw.jsonl", fmt="raw", with_names=True).path.read_text()
    assert '"annotator":"erased-' in text and '"annotator":"x"' not in text and "x wrote this" not in text
