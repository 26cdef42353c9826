"""A published version never changes: model checks, QuerySet.update, raw SQL (the triggers), bulk inserts."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from projects.models import AuditEvent
from rubrics import services
from rubrics.models import Criterion, FrozenVersionError, RubricVersion

from .conftest import build_rubric


def test_draft_criteria_edit_freely(draft_version):
    c = draft_version.criteria.get(key="c2")
    services.criterion_update(criterion=c, text="Cites a checkable source", weight=4)
    Criterion.objects.filter(pk=c.pk).update(guidance="Links count")
    c.refresh_from_db()
    assert (c.text, c.weight, c.guidance) == ("Cites a checkable source", 4, "Links count")


def test_weights_default_by_category(draft_version):
    weights = dict(draft_version.criteria.values_list("category", "weight"))
    assert weights == {"essential": 5, "important": 3, "optional": 1, "pitfall": -2}


def test_publishing_records_an_audit_event(admin_user):
    version = build_rubric(user=admin_user)
    event = AuditEvent.objects.get(action="rubric.publish")
    assert (event.target_id, event.actor, event.data["criteria"]) == (str(version.pk), admin_user, 4)


def test_model_save_of_published_version_is_refused(published_version):
    published_version.notes = "tweak"
    with pytest.raises(FrozenVersionError, match="published"):
        published_version.save()


def test_model_save_and_delete_of_published_criterion_are_refused(published_version):
    c = published_version.criteria.first()
    c.text = "changed"
    with pytest.raises(FrozenVersionError):
        c.save()
    with pytest.raises(FrozenVersionError):
        c.delete()
    with pytest.raises(FrozenVersionError):
        Criterion.objects.create(version=published_version, key="new", text="x", category="optional")


def test_services_refuse_published_versions(published_version):
    c = published_version.criteria.first()
    with pytest.raises(FrozenVersionError):
        services.criterion_add(version=published_version, text="x")
    with pytest.raises(FrozenVersionError):
        services.criterion_update(criterion=c, text="x")
    with pytest.raises(FrozenVersionError):
        services.criterion_move(criterion=c, offset=1)
    with pytest.raises(FrozenVersionError):
        services.version_publish(version=published_version, user=None)


def _refused(fn) -> None:
    with pytest.raises(IntegrityError, match="published"), transaction.atomic():
        fn()


def test_queryset_update_of_published_version_hits_the_trigger(published_version):
    _refused(lambda: RubricVersion.objects.filter(pk=published_version.pk).update(notes="x"))
    _refused(lambda: RubricVersion.objects.filter(pk=published_version.pk).update(status="draft"))
    published_version.refresh_from_db()
    assert (published_version.notes, published_version.status) == ("", "published")


def test_queryset_update_delete_and_bulk_insert_of_published_criteria_hit_the_trigger(published_version):
    criteria = Criterion.objects.filter(version=published_version)
    _refused(lambda: criteria.update(weight=100))
    _refused(lambda: criteria.delete())
    _refused(
        lambda: Criterion.objects.bulk_create(
            [Criterion(version=published_version, key="zz", text="x", category="optional", weight=1)]
        )
    )
    assert sorted(criteria.values_list("weight", flat=True)) == [-2, 1, 3, 5]


def test_moving_a_criterion_out_of_or_into_a_published_version_is_refused(published_version):
    draft = services.draft_from(version=published_version)
    _refused(lambda: Criterion.objects.filter(version=published_version, key="c1").update(version=draft))
    extra = services.criterion_add(version=draft, text="New one")
    _refused(lambda: Criterion.objects.filter(pk=extra.pk).update(version=published_version))


def test_raw_sql_is_refused_by_the_database(published_version):
    def raw(sql, params):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    _refused(
        lambda: raw("UPDATE rubrics_rubricversion SET notes = 'x' WHERE id = %s", [published_version.pk])
    )
    _refused(lambda: raw("DELETE FROM rubrics_rubricversion WHERE id = %s", [published_version.pk]))
    _refused(
        lambda: raw("UPDATE rubrics_criterion SET text = 'x' WHERE version_id = %s", [published_version.pk])
    )
    _refused(lambda: raw("DELETE FROM rubrics_criterion WHERE version_id = %s", [published_version.pk]))
    _refused(
        lambda: raw(
            "INSERT INTO rubrics_criterion (version_id, key, position, text, guidance, category, weight, answer_type)"
            " VALUES (%s, 'raw', 9, 'x', '', 'optional', 1, 'yes_no')",
            [published_version.pk],
        )
    )
    assert published_version.criteria.count() == 4


def test_draft_versions_can_be_published_and_discarded_at_the_database(draft_version):
    RubricVersion.objects.filter(pk=draft_version.pk).update(notes="ok")
    other = build_rubric("Other", publish=False)
    services.draft_discard(version=other)
    assert not RubricVersion.objects.filter(pk=other.pk).exists()


def test_editing_a_published_version_starts_a_draft_with_the_same_keys(published_version):
    draft = services.draft_from(version=published_version)
    assert (draft.number, draft.status, draft.based_on) == (2, "draft", published_version)
    old = list(
        published_version.criteria.values_list("key", "text", "category", "weight", "answer_type", "position")
    )
    new = list(draft.criteria.values_list("key", "text", "category", "weight", "answer_type", "position"))
    assert old == new
    # Asking again returns the same open draft.
    assert services.draft_from(version=published_version) == draft
    # New criteria get keys never used by any version.
    assert services.criterion_add(version=draft, text="Polite").key == "c5"


def test_difference_between_versions_criterion_by_criterion(published_version):
    draft = services.draft_from(version=published_version)
    services.criterion_update(criterion=draft.criteria.get(key="c2"), weight=4, text="Cites sources")
    services.criterion_delete(criterion=draft.criteria.get(key="c3"))
    services.criterion_add(version=draft, text="Polite", category="optional")
    services.criterion_move(criterion=draft.criteria.get(key="c4"), offset=-3)
    rows = {r["key"]: r for r in services.version_diff(published_version, draft)}
    assert rows["c3"]["status"] == "removed"
    assert rows["c5"]["status"] == "added"
    assert rows["c2"]["status"] == "changed"
    assert {f: (a, b) for f, a, b in rows["c2"]["changes"]} == {
        "text": ("Cites a source", "Cites sources"),
        "weight": (3, 4),
        "place": (2, 3),
    }
    assert rows["c4"]["changes"] == [("place", 4, 1)]
    assert rows["c1"]["changes"] == [("place", 1, 2)]


def test_only_published_versions_can_be_pinned_and_pinning_is_audited(project, researcher, draft_version):
    with pytest.raises(FrozenVersionError):
        services.project_pin_version(project=project, version=draft_version, user=researcher)
    version = services.version_publish(version=draft_version, user=researcher)
    services.project_pin_version(project=project, version=version, user=researcher)
    project.refresh_from_db()
    assert project.rubric_version == version
    event = AuditEvent.objects.get(action="project.rubric_pin")
    assert (event.project, event.target_id) == (project, str(version.pk))
