"""Personas and real-service fixtures shared by every test module."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from projects.access import ADMIN_GROUP
from projects.models import Membership, Project

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - test persona password


def make_user(username: str, **extra) -> User:
    return User.objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.org", **extra
    )


@pytest.fixture
def project(db) -> Project:
    return Project.objects.create(name="Helpful and harmless", slug="hh", overlap_k=3)


@pytest.fixture
def other_project(db) -> Project:
    return Project.objects.create(name="Another team", slug="elsewhere")


@pytest.fixture
def annotator(project) -> User:
    user = make_user("ann")
    Membership.objects.create(user=user, project=project, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def annotator2(project) -> User:
    user = make_user("ann2")
    Membership.objects.create(user=user, project=project, role=Membership.Role.ANNOTATOR)
    return user


@pytest.fixture
def researcher(project) -> User:
    user = make_user("res")
    Membership.objects.create(user=user, project=project, role=Membership.Role.RESEARCHER)
    return user


@pytest.fixture
def admin_user(db) -> User:
    user = make_user("boss", is_staff=True)
    group, _ = Group.objects.get_or_create(name=ADMIN_GROUP)
    user.groups.add(group)
    return user


@pytest.fixture
def outsider(other_project) -> User:
    """On another project only: everything of `project` must answer 404."""
    user = make_user("stranger")
    Membership.objects.create(user=user, project=other_project, role=Membership.Role.RESEARCHER)
    return user


def login(client, user: User):
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def removable_audit_rows(request):
    """After a transactional test on SQLite, delete the audit rows with the append-only triggers lifted: SQLite's
    flush deletes row by row and the triggers would refuse (PostgreSQL flushes with TRUNCATE). Set up after the
    database fixture, so this teardown runs before its flush."""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
        or (marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
    )
    if not transactional:
        yield
        return
    request.getfixturevalue(
        "transactional_db" if "transactional_db" in request.fixturenames else "_django_db_helper"
    )
    yield
    from django.db import connections

    from projects.audit_triggers import remove_all_rows_sqlite

    for connection in connections.all(initialized_only=True):
        remove_all_rows_sqlite(connection)
