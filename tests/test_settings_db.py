"""The database settings keep Django's big statements working on PostgreSQL."""

from __future__ import annotations

import pytest

from annotate.models import Comparison

pytestmark = pytest.mark.django_db


def test_more_than_65535_parameters_in_one_statement():
    """Django's cascade deletes and `__in` look-ups send one parameter per id; server-side binding would cap a
    statement at 65,535 of them, so deleting a big project would fail."""
    assert Comparison.objects.filter(pk__in=range(1, 70_002)).count() == 0
