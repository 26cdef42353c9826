"""Sessions: Django's database engine with its read prepared (settings.SESSION_ENGINE, infra/sessions.py) — stored in PostgreSQL only, expired ones read
as empty, logging out ends a session for good, a deactivated user is logged out."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from annotate.models import Assignment
from tests.conftest import PASSWORD
from tests.factories import make_comparisons

pytestmark = pytest.mark.django_db


def SessionStore(*args):  # noqa: N802 - the shipped engine's store class
    return import_module(settings.SESSION_ENGINE).SessionStore(*args)


def test_the_shipped_engine_keeps_sessions_in_the_database_alone():
    """So logging out ends a session even while Redis is down (no cached copy to outlive the delete)."""
    from django.contrib.sessions.backends import cache, cached_db, db

    engine = import_module(settings.SESSION_ENGINE).SessionStore
    assert issubclass(engine, db.SessionStore)
    assert not issubclass(engine, cached_db.SessionStore | cache.SessionStore)
    store = SessionStore()
    store["probe"] = [1, "two", {"three": 3.0}]
    store.create()
    assert Session.objects.filter(session_key=store.session_key).exists()
    assert SessionStore(store.session_key)["probe"] == [1, "two", {"three": 3.0}]


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
    api = reverse("api:labelling_claim", args=[project.slug])
    assert client.post(api).status_code == 200
    client.post(reverse("logout"))
    assert not Session.objects.filter(session_key=cookie).exists()
    client.cookies["sessionid"] = cookie  # an attacker replays the old cookie
    assert client.post(api).status_code == 401  # the JSON API answers, it does not redirect to the login page


def test_each_request_reads_its_session_and_user_fresh(client, annotator, annotator2, project):
    """The user a session names is the user of the request: another login's session is not mixed up with it."""
    make_comparisons(project, 2)
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    api = reverse("api:labelling_claim", args=[project.slug])
    first = client.post(api)
    assert first.status_code == 200
    assert Assignment.objects.get(pk=first.json()["assignment"]).annotator.user_id == annotator.pk
    client.post(reverse("logout"))
    client.post(reverse("login"), {"username": annotator2.username, "password": PASSWORD})
    second = client.post(api)
    assert second.status_code == 200
    assert Assignment.objects.get(pk=second.json()["assignment"]).annotator.user_id == annotator2.pk


def test_a_deactivated_user_is_logged_out(client, annotator, project):
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    api = reverse("api:labelling_claim", args=[project.slug])
    assert client.post(api).status_code == 200
    assert client.post(api).status_code == 200
    annotator.is_active = False
    annotator.save(update_fields=["is_active"])
    assert client.post(api).status_code == 401  # the JSON API answers, it does not redirect to the login page
