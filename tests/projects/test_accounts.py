"""Accounts (issue 19): change one's password, an admin's reset to a one-time password, and the prompt to
choose one's own at the first login with a one-time password. Navigation by role from the home page."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from projects.models import AuditEvent, Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
NEW = "a-much-longer-passphrase-42"


def change_password(client, old: str) -> None:
    resp = client.post(
        reverse("password_change"), {"old_password": old, "new_password1": NEW, "new_password2": NEW}
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]


def test_a_person_changes_their_password(client, annotator):
    client.force_login(annotator)
    assert "Change password" in client.get(reverse("home")).content.decode()
    bad = client.post(
        reverse("password_change"), {"old_password": "wrong", "new_password1": NEW, "new_password2": NEW}
    )
    assert bad.status_code == 200 and "field-error" in bad.content.decode()
    change_password(client, PASSWORD)
    annotator.refresh_from_db()
    assert annotator.check_password(NEW)
    assert AuditEvent.objects.filter(action="user.password_changed", target_id=str(annotator.pk)).exists()


def test_admin_reset_gives_a_one_time_password_and_the_first_login_asks_for_a_new_one(
    client, admin_user, annotator, project
):
    client.force_login(admin_user)
    membership = Membership.objects.get(user=annotator, project=project)
    resp = client.post(
        reverse("project_people", args=[project.slug]),
        {"action": "reset_password", "membership": membership.pk},
    )
    assert resp["Cache-Control"] == "no-store"
    one_time = re.search(r"<pre><code>([^<]+)</code></pre>", resp.content.decode()).group(1)
    assert AuditEvent.objects.filter(action="user.password_reset", actor=admin_user).exists()
    client.logout()
    assert (
        client.post(reverse("login"), {"username": annotator.username, "password": one_time}).status_code
        == 302
    )
    home = client.get(reverse("home"))
    assert home.status_code == 302 and home["Location"] == reverse("password_change")
    assert "one-time password" in client.get(reverse("password_change")).content.decode()
    change_password(client, one_time)
    assert client.get(reverse("home")).status_code == 200
    client.logout()  # the next login asks nothing
    assert client.post(reverse("login"), {"username": annotator.username, "password": NEW}).status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_invited_new_login_is_asked_to_choose_a_password(client, admin_user, project):
    client.force_login(admin_user)
    resp = client.post(
        reverse("project_people", args=[project.slug]),
        {"action": "invite", "username": "newbie", "role": "annotator", "create": "on"},
    )
    one_time = re.search(r"<pre><code>([^<]+)</code></pre>", resp.content.decode()).group(1)
    client.logout()
    client.post(reverse("login"), {"username": "newbie", "password": one_time})
    assert client.get(reverse("home"))["Location"] == reverse("password_change")


@pytest.mark.parametrize(
    ("persona", "present", "absent"),
    [
        ("admin_user", ["Rubrics", "Import data", "API tokens", "New project"], []),
        (
            "researcher",
            ["Rubrics", "Import data", "API tokens", "Settings", "Dashboard"],
            ["New project", "People"],
        ),
        ("annotator", ["Label", "Change password"], ["Rubrics", "Import data", "API tokens", "Settings"]),
    ],
)
def test_home_page_links_to_everything_the_role_may_use(client, request, project, persona, present, absent):
    user = request.getfixturevalue(persona)
    if persona == "admin_user":
        present = [*present, "People", "Settings"]
    client.force_login(user)
    page = client.get(reverse("home")).content.decode()
    for text in present:
        assert f">{text}</a>" in page, text
    for text in absent:
        assert f">{text}</a>" not in page, text
    for href in re.findall(r'href="(/[^"]*)"', page):
        if href.startswith(("/static/", "/admin/")):
            continue
        assert client.get(href).status_code == 200, href
