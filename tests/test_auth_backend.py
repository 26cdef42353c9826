"""config/auth.py: the logged-in user read with one SELECT is the user the ORM reads; Django's checks still hold."""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.models import User
from django.urls import reverse

from config.auth import ModelBackend
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def field_values(user: User) -> dict:
    return {f.attname: getattr(user, f.attname) for f in User._meta.concrete_fields}


def test_reads_the_same_user_as_the_orm():
    user = make_user("reader", first_name="Ada", is_staff=True)
    loaded = ModelBackend().get_user(str(user.pk))  # sessions hold the id as a string
    assert field_values(loaded) == field_values(User.objects.get(pk=user.pk))
    assert loaded._state.adding is False and loaded._state.db == "default"


def test_no_user_for_an_inactive_unknown_or_malformed_id():
    inactive = make_user("gone", is_active=False)
    backend = ModelBackend()
    assert backend.get_user(inactive.pk) is None
    assert backend.get_user(10**9) is None
    assert backend.get_user("not-a-number") is None


def test_login_records_this_backend_and_a_password_change_ends_other_sessions(client, annotator, project):
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    assert client.session[BACKEND_SESSION_KEY] == "config.auth.ModelBackend"
    api = reverse("api_claim", args=[project.slug])
    assert client.post(api).status_code == 200
    annotator.set_password("a-new-long-passphrase-2")
    annotator.save()  # elsewhere: the session's auth hash no longer matches
    response = client.post(api)
    assert response.status_code == 302 and reverse("login") in response["Location"]
