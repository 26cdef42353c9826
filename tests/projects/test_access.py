"""Memberships decide who sees a project: outsiders and anonymous users get 404 / the login page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import Membership

pytestmark = pytest.mark.django_db


def test_member_sees_project(client, project, annotator):
    client.force_login(annotator)
    response = client.get(reverse("project_detail", args=[project.slug]))
    assert response.status_code == 200
    assert project.name.encode() in response.content


def test_outsider_gets_404_on_project_not_theirs(client, project, outsider):
    client.force_login(outsider)
    assert client.get(reverse("project_detail", args=[project.slug])).status_code == 404


def test_home_lists_only_own_projects(client, project, other_project, outsider):
    client.force_login(outsider)
    body = client.get(reverse("home")).content.decode()
    assert other_project.name in body
    assert project.name not in body


def test_deactivated_member_gets_404(client, project, annotator):
    Membership.objects.filter(user=annotator).update(is_active=False)
    client.force_login(annotator)
    assert client.get(reverse("project_detail", args=[project.slug])).status_code == 404


def test_admin_sees_every_project(client, project, admin_user):
    client.force_login(admin_user)
    assert client.get(reverse("project_detail", args=[project.slug])).status_code == 200


def test_anonymous_is_sent_to_login(client, project):
    response = client.get(reverse("project_detail", args=[project.slug]))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_healthz_answers_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
