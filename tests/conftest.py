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


@pytest.fixture(scope="session", autouse=True)
def broker_folders():
    """Without REDIS_URL the Celery broker is the filesystem transport, whose folders `manage.py serve` makes at
    start; a test that queues a task (an admin's retry, say) finds them whatever ran before it."""
    from config.celery import ensure_broker_folders

    ensure_broker_folders()
