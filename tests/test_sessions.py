"""config/sessions.py: Django's database sessions read with one SELECT — same rows, same expiry, same logout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore as DjangoDBStore
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from config.sessions import SessionStore
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_reads_what_djangos_db_store_wrote_and_the_other_way_round():
    theirs = DjangoDBStore()
    theirs["probe"] = [1, "two", {"three": 3.0}]
    theirs.create()
    assert SessionStore(theirs.session_key)["probe"] == [1, "two", {"three": 3.0}]

    ours = SessionStore()
    ours["probe"] = "back"
    ours.create()
    assert DjangoDBStore(ours.session_key)["probe"] == "back"


def test_an_expired_or_unknown_session_reads_as_empty_and_forgets_its_key():
    store = SessionStore()
    store["probe"] = 1
    store.create()
    Session.objects.filter(session_key=store.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    expired = SessionStore(store.session_key)
    assert expired.load() == {}
    assert expired.session_key is None
    unknown = SessionStore("x" * 32)
    assert unknown.load() == {} and unknown.session_key is None


def test_logging_out_ends_the_session_for_a_replayed_cookie(client, annotator, project):
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    cookie = client.cookies["sessionid"].value
    api = reverse("api_claim", args=[project.slug])
    assert client.post(api).status_code == 200
    client.post(reverse("logout"))
    assert not Session.objects.filter(session_key=cookie).exists()
    client.cookies["sessionid"] = cookie  # an attacker replays the old cookie
    response = client.post(api)
    assert response.status_code == 302 and reverse("login") in response["Location"]
