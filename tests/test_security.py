"""Security settings: the production profile passes Django's deploy checks, logins lock out, sessions rotate."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.urls import reverse

from tests.conftest import PASSWORD, make_user
from tests.servers import start_asgi

ROOT = Path(__file__).resolve().parent.parent


def test_production_profile_passes_check_deploy():
    env = dict(
        os.environ,
        ARBITER_PRODUCTION="1",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="arbiter.example.org",
    )
    env.pop("DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_profile_refuses_to_start_without_secret_key():
    env = dict(os.environ, ARBITER_PRODUCTION="1")
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_account_even_with_the_right_password(client, annotator):
    url = reverse("login")
    for _ in range(5):
        response = client.post(url, {"username": annotator.username, "password": "wrong"})
        assert response.status_code in (200, 429)
    response = client.post(url, {"username": annotator.username, "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_session_key_rotates_at_login(client, annotator):
    client.get(reverse("login"))
    session = client.session
    session["probe"] = 1
    session.save()
    before = session.session_key
    response = client.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.session.session_key != before
    assert client.session["_auth_user_id"] == str(annotator.pk)


# --- client addresses and the login lockout (issue 20) ----------------------------------------------------


def _login_attempts(base: str, username: str, attempts: list[tuple[str, str | None]]) -> list[httpx.Response]:
    """POST the login form once per (password, X-Forwarded-For or None), each with a fresh CSRF token."""
    answers = []
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as http:
        for password, forwarded in attempts:
            page = http.get("/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            headers = {"X-Forwarded-For": forwarded} if forwarded else {}
            answers.append(
                http.post(
                    "/login/",
                    data={"username": username, "password": password, "csrfmiddlewaretoken": token},
                    headers=headers,
                )
            )
    return answers


@pytest.mark.django_db(transaction=True)
def test_made_up_forwarded_for_does_not_lift_the_lockout_through_the_shipped_server(tmp_path):
    """From the host itself (uvicorn's default trusted address), with the shipped flags: five failures lock the
    account, and neither a made-up X-Forwarded-For with the right password nor rotating it gets in."""
    make_user("victim")
    server, base = start_asgi(tmp_path)
    try:
        failures = _login_attempts(base, "victim", [("wrong", None)] * 5)
        with_header = _login_attempts(base, "victim", [(PASSWORD, "203.0.113.7")])
        rotating = _login_attempts(
            base, "victim", [("wrong", f"198.51.100.{i}") for i in range(20)] + [(PASSWORD, "198.51.100.99")]
        )
    finally:
        server.stop()
    assert [r.status_code for r in failures] == [200, 200, 200, 200, 429]
    assert with_header[0].status_code == 429, with_header[0].text[:300]
    assert {r.status_code for r in rotating} == {429}
    assert "sessionid" not in with_header[0].cookies and all("sessionid" not in r.cookies for r in rotating)


@pytest.mark.django_db(transaction=True)
def test_rotating_forwarded_for_still_locks_the_account(tmp_path):
    """Every attempt from a different made-up address: the sixth is refused all the same."""
    make_user("victim2")
    server, base = start_asgi(tmp_path)
    try:
        answers = _login_attempts(
            base, "victim2", [("wrong", f"192.0.2.{i}") for i in range(5)] + [(PASSWORD, "192.0.2.200")]
        )
    finally:
        server.stop()
    assert answers[-1].status_code == 429


@pytest.mark.django_db
def test_lockout_keys_on_the_address_a_trusted_proxy_vouches_for(client, annotator, settings):
    """Behind one trusted proxy the client is the last X-Forwarded-For entry (the one the proxy wrote): entries a
    client adds in front of it are ignored, and another real client is not locked out by the first."""
    settings.ARBITER_TRUSTED_PROXY_COUNT = 1
    url = reverse("login")
    for i in range(5):
        client.post(
            url,
            {"username": annotator.username, "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"10.9.9.{i}, 203.0.113.5",
        )
    locked = client.post(
        url,
        {"username": annotator.username, "password": PASSWORD},
        HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.5",
    )
    assert locked.status_code == 429
    elsewhere = client.post(
        url, {"username": annotator.username, "password": PASSWORD}, HTTP_X_FORWARDED_FOR="203.0.113.6"
    )
    assert elsewhere.status_code == 302


@pytest.mark.parametrize(
    ("peer", "forwarded", "networks", "count", "want"),
    [
        ("127.0.0.1", "6.6.6.6", (), 0, "127.0.0.1"),  # nothing trusted: the header is never read
        ("10.0.0.2", "6.6.6.6, 198.51.100.1", (), 1, "198.51.100.1"),  # one hop: the proxy's entry
        ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.3", ("10.0.0.0/8",), 0, "198.51.100.1"),
        ("192.0.2.9", "6.6.6.6", ("10.0.0.0/8",), 0, "192.0.2.9"),  # peer not a proxy: header ignored
        ("10.0.0.2", "", (), 1, "10.0.0.2"),  # a proxy that sent no header
        ("10.0.0.2", "not-an-ip", (), 1, "10.0.0.2"),
        ("10.0.0.2", "[2001:db8::1]:443", (), 1, "2001:db8::1"),
    ],
)
def test_client_address_resolution(peer, forwarded, networks, count, want):
    from infra.client_ip import resolve, trusted_networks

    assert resolve(peer, forwarded, networks=trusted_networks(networks), count=count) == want


def test_uvicorn_never_reads_forwarded_headers_itself():
    from config.server import uvicorn_argv

    assert "--no-proxy-headers" in uvicorn_argv("python", host="127.0.0.1", port=8000, workers=1)


# --- production mode and the demo (issue 20) --------------------------------------------------------------


def _manage(*args: str, **env_overrides: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_flags_the_demo_key_outside_production_too():
    result = _manage("check", "--deploy", ARBITER_PRODUCTION=None, SECRET_KEY=None, DEBUG=None)
    assert result.returncode != 0
    assert "arbiter.E001" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "key", ["insecure-embedded-demo-key-set-SECRET_KEY-in-production", "change-me-to-a-long-random-string"]
)
def test_production_refuses_to_start_with_a_published_key(key):
    result = _manage("check", ARBITER_PRODUCTION="1", SECRET_KEY=key)
    assert result.returncode != 0
    assert "published key" in result.stderr


@pytest.mark.django_db
def test_seed_demo_refuses_in_production(settings):
    from django.contrib.auth.models import User
    from django.core.management import CommandError, call_command

    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="never creates the demo"):
        call_command("seed_demo", "--quiet")
    assert not User.objects.filter(username__in=["admin", "researcher", "annotator1"]).exists()


@pytest.mark.django_db(transaction=True)
def test_serve_in_production_creates_no_demo_login(tmp_path):
    from django.contrib.auth.models import User

    from tests.servers import Process, free_port, test_database_env, wait_for_port

    port = free_port()
    env = test_database_env() | {
        "ARBITER_PRODUCTION": "1",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ARBITER_DATA_DIR": str(tmp_path / "data"),
    }
    proc = Process(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--no-access-log"],
        env,
        tmp_path / "serve.log",
    )
    try:
        wait_for_port(port, proc.proc, timeout=120)
    finally:
        proc.stop()
    assert "the demo is not seeded" in proc.output()
    assert not User.objects.filter(username__in=["admin", "researcher", "annotator1", "annotator2"]).exists()


# --- forms, methods and the API docs (issue 20) -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"action": "explode"},
        {"action": "role", "membership": "abc", "role": "researcher"},
        {"action": "deactivate"},
    ],
)
def test_people_page_answers_400_to_an_unknown_or_malformed_action(
    client, project, admin_user, annotator, data
):
    from projects.models import AuditEvent, Membership

    client.force_login(admin_user)
    response = client.post(reverse("project_people", args=[project.slug]), data)
    assert response.status_code == 400
    assert Membership.objects.get(user=annotator).is_active
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


@pytest.mark.django_db
def test_people_page_refuses_an_unknown_role_with_a_message(client, project, admin_user, annotator):
    from projects.models import Membership

    client.force_login(admin_user)
    membership = Membership.objects.get(user=annotator)
    response = client.post(
        reverse("project_people", args=[project.slug]),
        {"action": "role", "membership": membership.pk, "role": "overlord"},
    )
    assert response.status_code == 200
    assert "choose annotator or researcher" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == "annotator"


# Pages that take a form post (or an htmx/fetch POST); every other page is GET (and HEAD) only.
POST_PAGES = {
    "login",
    "logout",
    "project_people",
    "workbench_submit",
    "workbench_draft",
    "workbench_skip",
    "workbench_revise",
    "workbench_revise_ranking",
    "workbench_controls",
    "rewardtrain:rubric_reward_version",
    "rewardtrain:rubric_reward_export",
    "snapshot_list",
    "export_page",
    "token_list",
    "token_revoke",
    "import_new",
    "dashboard_recompute",
    "annotator_flag",
    "annotator_unpause",
    "comparison_adjudicate",
    "comparisons_more",
    "rewardtrain:run_new",
    "rewardtrain:run_cancel",
    "rewardtrain:model_activate",
    "rewardtrain:evaluate_new",
    "rewardtrain:eval_set_list",
    "rewardtrain:eval_compare",
    "rubric_list",
    "rubric_import",
    "rubric_detail",
    "rubric_criterion_add",
    "rubric_criterion_edit",
    "rubric_criterion_delete",
    "rubric_criterion_move",
    "rubric_reorder",
    "rubric_publish",
    "rubric_new_draft",
    "rubric_discard",
    "rubric_preview",
    "project_rubric",
    "rubric_copy",
    "rubric_share",
    "password_change",
    "project_new",
    "project_settings",
}
SAMPLE_ARGS = {"slug": "nope", "int": 987654, "string": "x", "path": "x"}


def _site_pages() -> dict[str, str]:
    """Every named page of the site (not the admin, not the JSON API) with sample arguments: name → path."""
    from django.urls import URLPattern, URLResolver, get_resolver

    pages: dict[str, str] = {}

    def walk(patterns, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if entry.app_name in ("admin", "api") or entry.namespace in ("admin", "api"):
                    continue
                walk(entry.url_patterns, f"{namespace}{entry.namespace}:" if entry.namespace else namespace)
            elif isinstance(entry, URLPattern) and entry.name:
                converters = getattr(entry.pattern, "converters", {})
                kwargs = {
                    key: SAMPLE_ARGS[type(conv).__name__.replace("Converter", "").lower()]
                    for key, conv in converters.items()
                }
                pages[namespace + entry.name] = reverse(namespace + entry.name, kwargs=kwargs)

    walk(get_resolver().url_patterns, "")
    return pages


def test_the_method_table_names_only_real_pages():
    assert set(_site_pages()) >= POST_PAGES, POST_PAGES - set(_site_pages())


@pytest.mark.django_db
def test_pages_answer_405_to_methods_they_do_not_take(client, outsider):
    """Signed in (on another project): a GET-only page answers POST with 405, and no page takes PUT or DELETE."""
    client.force_login(outsider)
    wrong = {}
    for name, path in _site_pages().items():
        if name not in POST_PAGES and (status := client.post(path).status_code) != 405:
            wrong[f"POST {name}"] = status
        for method in (client.put, client.delete):
            if (status := method(path).status_code) != 405:
                wrong[f"{method.__name__.upper()} {name}"] = status
    assert not wrong, wrong


@pytest.mark.django_db
def test_api_docs_and_schema_are_for_signed_in_users(client, annotator):
    from projects.api_auth import create_token

    for path in ("/api/docs", "/api/openapi.json"):
        anonymous = client.get(path)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login")), path
        assert client.get(path, HTTP_AUTHORIZATION="Bearer arb_not-a-token").status_code == 401, path
    _, raw = create_token(user=annotator, name="docs")
    schema = client.get("/api/openapi.json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "Arbiter API"
    client.force_login(annotator)
    assert client.get("/api/docs").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200


# --- Content-Security-Policy (issue 20; in the browser: tests/browser/test_csp_browser.py) ----------------


@pytest.mark.django_db
def test_every_page_carries_the_content_security_policy(client, annotator):
    for path in ("/login/", "/healthz"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    client.force_login(annotator)
    assert "frame-ancestors 'none'" in client.get("/")["Content-Security-Policy"]


INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>|\son[a-z]+\s*=|\sstyle\s*=", re.I
)


def test_templates_hold_no_inline_script_handler_or_style():
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for path in (ROOT / "templates").rglob("*.html")
        for match in INLINE.finditer(path.read_text())
    ]
    assert not offenders, offenders
