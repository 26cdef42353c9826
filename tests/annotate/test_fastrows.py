"""annotate/fastrows.py ModelRows and ModelInsert: what the ORM would read and write, on either database."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.models.signals import post_save, pre_save

from annotate.fastrows import ModelInsert, ModelRows, hot_cursor
from annotate.models import Assignment, Judgment
from projects.models import Annotator, Project
from tests.factories import make_comparison

pytestmark = pytest.mark.django_db


def values(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_model_rows_load_what_the_orm_loads(project):
    project.harm_categories = ["violence", "privacy_violation"]
    project.guidelines_updated_at = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    project.paused = True
    project.save()
    rows = ModelRows(Project)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {rows.columns('p')} FROM annotate_project p WHERE p.id = %s", [project.pk])
        loaded = rows.load(cursor.fetchone(), connection)
    assert values(loaded) == values(Project.objects.get(pk=project.pk))
    assert loaded.harm_categories == ["violence", "privacy_violation"] and loaded.paused is True


def test_model_insert_writes_what_create_would_and_sends_the_save_signals(project, annotator):
    comparison = make_comparison(project)
    crowd = Annotator.objects.create(project=project, user=annotator, name=annotator.username)
    assignment = Assignment.objects.create(project=project, comparison=comparison, annotator=crowd)
    now = dt.datetime(2026, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)
    fields = {
        "preference": -2,
        "choice": "a",
        "a_safe": False,
        "b_safe": True,
        "a_harm_categories": ["violence"],
        "b_harm_categories": [],
        "a_severity": "minor",
        "justification": "Left is clearer.",
        "time_spent_ms": 4200,
    }
    sent = []

    def record(sender, instance, **kwargs):
        sent.append((kwargs.get("created"), instance.pk))

    pre_save.connect(record, sender=Judgment)
    post_save.connect(record, sender=Judgment)
    try:
        judgment = Judgment(
            project=project,
            comparison=comparison,
            annotator=crowd,
            assignment=assignment,
            created_at=now,
            updated_at=now,
            **fields,
        )
        ModelInsert(Judgment).insert(judgment, connection)
    finally:
        pre_save.disconnect(record, sender=Judgment)
        post_save.disconnect(record, sender=Judgment)
    assert judgment.pk is not None and judgment._state.adding is False
    assert sent == [(None, None), (True, judgment.pk)]
    stored = Judgment.objects.get(pk=judgment.pk)
    assert values(stored) == values(judgment)
    assert stored.a_harm_categories == ["violence"] and stored.created_at == now


def test_hot_cursor_prepares_its_statements_on_postgresql_and_logs_their_text(project):
    from django.test.utils import CaptureQueriesContext

    sql = "SELECT p.slug FROM annotate_project p WHERE p.id = %s AND p.slug <> %s"
    with CaptureQueriesContext(connection) as queries:
        for _ in range(2):
            with hot_cursor(connection) as cursor:
                cursor.execute(sql, [project.pk, "x" * 70_000])  # values of any size: they travel apart
                assert cursor.fetchone() == (project.slug,)
    assert all("annotate_project" in q["sql"] for q in queries.captured_queries)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%p.slug <> $2%"]
        )
        assert cursor.fetchall(), "prepared on the connection"
        cursor.execute("SELECT %s::text", ["COUNT_ME"])  # Django's own cursors still prepare nothing
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%COUNT_ME%"])
        assert cursor.fetchone() == (0,)
