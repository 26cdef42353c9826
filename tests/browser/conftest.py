"""Shared pieces of the browser tests: one ASGI server and one Chromium per module, and logging in."""

from __future__ import annotations

import os

import pytest
from django.db import connections

from tests.backends import CHROMIUM_ARGS, chromium_path
from tests.conftest import PASSWORD
from tests.servers import start_asgi


@pytest.fixture(scope="module")
def live_server_url(tmp_path_factory, django_db_setup):
    """The real ASGI server (uvicorn) on the test database, shared by a module's tests."""
    proc, base_url = start_asgi(tmp_path_factory.mktemp("asgi"))
    yield base_url
    proc.stop()


@pytest.fixture(scope="module")
def chromium(live_server_url):
    path = chromium_path()
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls stay synchronous.
    # Set after the server started, so the server process does not inherit it.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional browser dependency

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before
        connections.close_all()


@pytest.fixture
def new_page(chromium, live_server_url):
    """`new_page(username, width, height)`: a fresh context, logged in; closed after the test."""
    contexts = []

    def make(username: str, width: int = 1280, height: int = 720):
        context = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(live_server_url + "/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(live_server_url + "/")
        return page

    yield make
    for context in contexts:
        context.close()
    # ORM calls made while Playwright's loop runs use their own connection: give it back.
    connections.close_all()
