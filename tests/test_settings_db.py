"""The database settings keep Django's big statements working on PostgreSQL."""

from __future__ import annotations

import pytest

from annotate.models import Comparison

pytestmark = pytest.mark.django_db


def test_more_than_65535_parameters_in_one_statement():
    """Django's cascade deletes and `__in` look-ups send one parameter per id; server-side binding would cap a
    statement at 65,535 of them, so deleting a big project would fail."""
    assert Comparison.objects.filter(pk__in=range(1, 70_002)).count() == 0


def test_the_workbench_statements_are_prepared_and_django_s_are_not():
    """infra/prepared.py binds on the server and prepares (DATABASES OPTIONS `prepare_threshold` must not be
    None for that); Django's own cursors keep binding on the client, so they are never prepared."""
    from django.db import connection

    from infra import prepared

    probe = "SELECT %s::int + 41 AS arbiter_probe"
    assert prepared.run(probe, [1]) == [(42,)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2 AS arbiter_unprepared_probe")
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert any("arbiter_probe" in s for s in statements)
    assert not any("arbiter_unprepared_probe" in s for s in statements)
