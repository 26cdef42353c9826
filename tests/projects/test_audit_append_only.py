"""The audit log is append-only in the database itself: ORM updates/deletes and raw SQL are refused (PostgreSQL
triggers), except rewriting the actor and data, which erasure needs; erasure still works."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from projects.models import AuditEvent
from tests.factories import add_judgment, crowd_annotator, make_comparison

pytestmark = pytest.mark.django_db


def _refused(fn) -> None:
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        fn()


@pytest.fixture
def event(project, researcher):
    return AuditEvent.objects.create(
        actor=researcher, actor_name="res", action="export.create", project=project, data={"rows": 3}
    )


def _raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_orm_update_and_delete_of_an_audit_event_are_refused(event):
    _refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(action="nothing.happened"))
    _refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(target_id="42"))
    _refused(lambda: AuditEvent.objects.filter(pk=event.pk).delete())
    event.refresh_from_db()
    assert event.action == "export.create"


def test_raw_sql_update_and_delete_are_refused(event):
    _refused(lambda: _raw("UPDATE annotate_auditevent SET action = %s WHERE id = %s", ["x", event.pk]))
    _refused(lambda: _raw("DELETE FROM annotate_auditevent WHERE id = %s", [event.pk]))
    assert AuditEvent.objects.filter(pk=event.pk, action="export.create").exists()


def test_the_actor_and_data_may_be_rewritten_for_erasure(event):
    AuditEvent.objects.filter(pk=event.pk).update(actor=None, actor_name="annotator-7f3a", data={"rows": 3})
    event.refresh_from_db()
    assert (event.actor_id, event.actor_name) == (None, "annotator-7f3a")


def test_deleting_the_user_sets_the_actor_to_null(event, researcher):
    User.objects.filter(pk=researcher.pk).delete()
    event.refresh_from_db()
    assert event.actor_id is None and event.actor_name == "res"


def test_erasure_still_rewrites_the_audit_events_naming_the_person(project):
    person = crowd_annotator(project, "zelda_quark")
    add_judgment(make_comparison(project), person, preference=1)
    AuditEvent.objects.create(
        actor_name="zelda_quark", action="import.row", project=project, data={"by": "zelda_quark"}
    )
    call_command("erase_annotator", project=project.slug, annotator="zelda_quark")
    assert not AuditEvent.objects.filter(actor_name="zelda_quark").exists()
    assert AuditEvent.objects.filter(action="annotator.erase", project=project).exists()
    assert "zelda_quark" not in str(list(AuditEvent.objects.values_list("data", flat=True)))


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_with_audit_rows_tears_down_cleanly(project, researcher):
    """Django's flush after a transactional test truncates the table, which fires no row trigger."""
    AuditEvent.objects.create(actor=researcher, actor_name="res", action="x", project=project)
    assert AuditEvent.objects.count() == 1
