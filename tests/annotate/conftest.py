"""Fixtures of the workbench tests beyond the shared personas."""

from __future__ import annotations

import pytest

from projects.models import Project


@pytest.fixture
def ranking_project(project) -> Project:
    """The shared project, asking for rankings instead of pairs."""
    project.task_kind = Project.TaskKind.RANKING
    project.save()
    return project
