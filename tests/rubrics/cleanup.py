"""Remove published rubrics after a transactional test on SQLite, whose flush deletes row by row and so trips
the frozen-version triggers (PostgreSQL flushes with TRUNCATE, which fires no row trigger)."""

from __future__ import annotations

from django.db import connection

from projects.models import Project
from rubrics import triggers
from rubrics.models import Criterion, CriterionAnswer, Rubric, RubricVersion


def remove_rubrics() -> None:
    if connection.vendor != "sqlite":
        return
    triggers.uninstall(connection)
    try:
        CriterionAnswer.objects.all().delete()
        Project.objects.update(rubric_version=None)
        Criterion.objects.all()._raw_delete(connection.alias)
        RubricVersion.objects.all()._raw_delete(connection.alias)
        Rubric.objects.all()._raw_delete(connection.alias)
    finally:
        triggers.install(connection)
