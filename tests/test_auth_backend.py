"""Authentication: Django's ModelBackend (after django-axes') with its per-request user read prepared
(infra/auth.py), and Django's checks on every request."""

from __future__ import annotations

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.urls import reverse

from infra.auth import Backend
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def test_no_user_for_an_inactive_unknown_or_malformed_id():
    inactive = make_user("gone", is_active=False)
    backend = Backend()
    assert isinstance(backend, ModelBackend)
    assert backend.get_user(inactive.pk) is None
    assert backend.get_user(10**9) is None
    assert backend.get_user("not-an-id") is None
    active = make_user("here")
    found = backend.get_user(str(active.pk))  # sessions hold the id as a string
    assert found == active
    assert (found.username, found.password, found.is_active) == (active.username, active.password, True)


def test_login_records_the_backend_and_a_password_change_ends_other_sessions(client, annotator, project):
    client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    assert client.session[BACKEND_SESSION_KEY] == "infra.auth.Backend"
    api = reverse("api:labelling_claim", args=[project.slug])
    assert client.post(api).status_code == 200
    annotator.set_password("a-new-long-passphrase-2")
    annotator.save()  # elsewhere: the session's auth hash no longer matches
    assert client.post(api).status_code == 401  # the JSON API answers, it does not redirect to the login page


class ConnectionProbeHasher(PBKDF2PasswordHasher):
    """PBKDF2 (few rounds: a test) that notes, each time it hashes, how many connections are checked out of the
    PostgreSQL pool at that moment (psycopg_pool's own figures)."""

    iterations = 1000
    held: list[int] = []

    def encode(self, password, salt, iterations=None):
        stats = connection.pool.get_stats()
        type(self).held.append(stats["pool_size"] - stats["pool_available"])
        return super().encode(password, salt, iterations)


@pytest.mark.django_db(transaction=True)
def test_login_holds_no_database_connection_while_hashing(client, settings):
    """The probe's finding: 40 logins at once held a worker's whole pool through their password hashing, and the
    annotators' claims waited seconds. Right, wrong and unknown logins all hash with no connection checked out,
    and the session is still made."""
    settings.PASSWORD_HASHERS = ["tests.test_auth_backend.ConnectionProbeHasher"]
    make_user("shift-start")  # its password hashed with the probe
    ConnectionProbeHasher.held.clear()
    url = reverse("login")
    assert client.post(url, {"username": "shift-start", "password": "wrong"}).status_code == 200
    assert client.post(url, {"username": "nobody-here", "password": PASSWORD}).status_code == 200
    assert client.post(url, {"username": "shift-start", "password": PASSWORD}).status_code == 302
    assert client.session[BACKEND_SESSION_KEY] == "infra.auth.Backend"
    assert ConnectionProbeHasher.held == [0, 0, 0]
