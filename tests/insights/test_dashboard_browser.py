"""A researcher's open dashboard refreshes by itself when fresh figures are cached (a real Chromium on the
ASGI server: over the socket with Redis, by polling without)."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client

from insights.dashboard import recompute_dashboard
from tests.backends import CHROMIUM_ARGS as ARGS
from tests.backends import chromium_path
from tests.factories import add_judgment, crowd_annotator, make_comparisons
from tests.servers import start_asgi


def in_thread(fn) -> None:
    errors = []

    def run():
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - re-raised below in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_open_dashboard_shows_new_figures_without_a_reload(project, researcher, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    cache.clear()
    people = [crowd_annotator(project, n) for n in ("ada", "bo")]
    comparisons = make_comparisons(project, 3)
    for c in comparisons[:2]:
        for person in people:
            add_judgment(c, person, preference=1)
    recompute_dashboard(project.pk)
    client = Client()
    client.force_login(researcher)
    server, base_url = start_asgi(tmp_path)
    try:
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=ARGS)
            context = browser.new_context()
            context.add_cookies(
                [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}]
            )
            page = context.new_page()
            page.goto(f"{base_url}/p/{project.slug}/dashboard/")
            stats = page.locator(".stats dd").first
            assert stats.inner_text() == "4"
            mode = page.locator("[data-dashboard]").get_attribute("data-live")
            assert mode == ("ws" if settings.CROSS_PROCESS_CHANNELS else "poll")
            if mode == "ws":
                page.wait_for_timeout(500)  # the socket opens

            def judge_and_recompute():
                for person in people:
                    add_judgment(comparisons[2], person, preference=-1)
                recompute_dashboard(project.pk)  # what the worker does: cache, then announce

            in_thread(judge_and_recompute)  # Playwright's loop runs in this thread; the ORM refuses it
            page.wait_for_function(
                "() => document.querySelector('.stats dd').innerText === '6'", timeout=25_000
            )
            assert "ada" in page.content()
            browser.close()
    finally:
        server.stop()
        cache.clear()
