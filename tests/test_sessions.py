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


def _requests_sql(client, url) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.post(url)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


def test_a_known_session_reads_its_user_in_the_same_statement(client, annotator, project):
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    api = reverse("api_claim", args=[project.slug])
    _requests_sql(client, api)  # this process learns which user the session holds
    sql = _requests_sql(client, api)
    assert any("django_session" in q and "auth_user" in q for q in sql)
    assert not any("auth_user" in q and "django_session" not in q for q in sql), sql  # no second user read


def test_the_joined_user_is_used_only_for_the_id_the_session_holds(client, annotator, annotator2, project):
    from annotate.models import Assignment
    from config import sessions
    from tests.factories import make_comparisons

    make_comparisons(project, 2)
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    key = client.cookies["sessionid"].value
    sessions._user_of_key[key] = str(annotator2.pk)  # a wrong hint: the other user's row comes joined
    response = client.post(reverse("api_claim", args=[project.slug]))
    assert response.status_code == 200
    assignment = Assignment.objects.get(pk=response.json()["assignment"])
    assert assignment.annotator.user_id == annotator.pk  # the session's user, read on its own
    assert sessions._user_of_key[key] == str(annotator.pk)  # and the hint corrected


def test_a_deactivated_user_is_logged_out_though_their_row_comes_with_the_session(client, annotator, project):
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    api = reverse("api_claim", args=[project.slug])
    assert client.post(api).status_code == 200
    assert client.post(api).status_code == 200  # the joined read
    annotator.is_active = False
    annotator.save(update_fields=["is_active"])
    response = client.post(api)
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_remembered_decoding_hands_out_fresh_copies_and_refuses_altered_texts():
    from config import sessions

    store = SessionStore()
    store["probe"] = "value"
    store.create()
    text = Session.objects.get(session_key=store.session_key).session_data
    first = SessionStore(store.session_key)
    assert first["probe"] == "value"
    assert (first.key_salt, text) in sessions._decoded  # remembered once verified
    first["probe"] = "changed in this request only"
    assert SessionStore(store.session_key)["probe"] == "value"  # the memo is not the request's dict
    altered = text[:-2] + ("A" if text[-2] != "A" else "B") + text[-1]
    assert SessionStore().decode(altered) == {}  # a tampered text fails Django's check, as before
    assert (first.key_salt, altered) not in sessions._decoded


def test_remembered_decoding_follows_the_secret_key(settings):
    store = SessionStore()
    store["probe"] = "value"
    store.create()
    assert SessionStore(store.session_key)["probe"] == "value"  # decoded and remembered
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = []
    assert SessionStore(store.session_key).load() == {}  # signed with the old key: refused, not remembered
