"""Deleting projects and items is soft: snapshots keep pointing at the rows and old snapshots still export."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import ProtectedError
from django.urls import reverse

from annotate.erasure import items_soft_delete, project_soft_delete
from annotate.models import Comparison, Item
from curation.exporters import export_snapshot
from curation.snapshots import create_snapshot
from projects.models import AuditEvent
from tests.conftest import login
from tests.factories import add_judgment, crowd_annotator, make_comparison


@pytest.fixture
def labelled(project):
    ann = crowd_annotator(project, "x")
    c1 = make_comparison(project, "p1", "a1", "b1")
    c2 = make_comparison(project, "p2", "a2", "b2")
    add_judgment(c1, ann, preference=-1)
    add_judgment(c2, ann, preference=2)
    return project, c1, c2, create_snapshot(project=project)


def test_deleted_items_leave_new_snapshots_but_old_ones_still_export(labelled, tmp_path, admin_user):
    project, c1, c2, old = labelled
    assert items_soft_delete(project=project, item_ids=[c1.item_id], actor=admin_user) == 1
    assert Item.objects.get(pk=c1.item_id).deleted_at is not None
    assert Comparison.objects.get(pk=c1.pk).deleted_at is not None
    new = create_snapshot(project=project)
    assert list(new.pairs.values_list("comparison_id", flat=True)) == [c2.pk]
    result = export_snapshot(old, tmp_path / "old.jsonl", fmt="hh")
    assert result.rows == 2
    assert AuditEvent.objects.get(action="items.delete").data["items"] == [c1.item_id]


def test_snapshotted_comparisons_cannot_be_hard_deleted(labelled):
    _, c1, _, _ = labelled
    with pytest.raises(ProtectedError):
        Comparison.objects.filter(pk=c1.pk).delete()


def test_deleted_project_disappears_from_pages_but_its_snapshots_export(
    labelled, tmp_path, admin_user, client
):
    project, _, _, old = labelled
    project_soft_delete(project=project, actor=admin_user)
    assert project.deleted_at is not None
    login(client, admin_user)
    assert client.get(reverse("snapshot_list", args=[project.slug])).status_code == 404
    assert client.get(reverse("project_detail", args=[project.slug])).status_code == 404
    out = StringIO()
    call_command(
        "export_dataset",
        "--project",
        project.slug,
        "--snapshot",
        str(old.pk),
        "--format",
        "trl",
        "--out",
        str(tmp_path / "t.jsonl"),
        "--json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["rows"] == 2
    assert AuditEvent.objects.filter(action="project.delete", project=project).exists()
