"""The Content-Security-Policy in a real Chromium (issue 20): every main page carries it, and none of them trips it
(no inline script, no inline style, nothing from another origin) while it loads, runs its scripts and opens its
socket: the workbench (also answered and submitted), the dashboard, the import and export pages, the rubric
editor, the comparisons and margins pages, the project and home pages."""

from __future__ import annotations

import pytest
from django.db import connections

from annotate.models import Comparison
from projects.models import Membership, Project
from tests.backends import chromium_path
from tests.conftest import PASSWORD, make_user
from tests.factories import make_comparison
from tests.rubrics.conftest import build_rubric
from tests.servers import start_asgi

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# Collects every violation the page reports, from before the page's own first script runs.
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def _log_in(context, base: str, username: str):
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(base + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    return page, violations


def _visit(page, base: str, path: str, ready: str) -> list[str]:
    response = page.goto(base + path)
    assert response.status == 200, path
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy, (path, policy)
    page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")
    return [f"{path}: {v}" for v in page.evaluate("window.__csp")]


def test_main_pages_run_under_the_policy_without_a_violation(tmp_path, monkeypatch):
    project = Project.objects.create(
        name="Helpful and harmless",
        slug="hh",
        overlap_k=1,
        justification="optional",
        researchers_can_export=True,
    )
    for i in range(3):
        c = make_comparison(project, f"Question {i}: name a colour", f"Blue {i}.", f"Red {i}.")
        Comparison.objects.filter(pk=c.pk).update(random_key=i / 10)
    admin = make_user("boss", is_staff=True, is_superuser=True)
    ann = make_user("ann")
    Membership.objects.create(user=ann, project=project, role=Membership.Role.ANNOTATOR)
    Membership.objects.create(user=admin, project=project, role=Membership.Role.RESEARCHER)
    draft = build_rubric(publish=False, user=admin)

    server, base = start_asgi(tmp_path)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional browser dependency

    found: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            context = browser.new_context()
            context.add_init_script(WATCH)

            page, console = _log_in(context, base, "boss")
            for path, ready in [
                ("/", "main"),
                (f"/p/{project.slug}/", "main"),
                (f"/p/{project.slug}/dashboard/", "main"),
                ("/imports/", "form[enctype='multipart/form-data']"),
                (f"/p/{project.slug}/export/", "form"),
                (f"/p/{project.slug}/comparisons/", "main"),
                (f"/p/{project.slug}/margins/", "main"),
                ("/rubrics/", "#new-rubric"),
                (f"/rubrics/{draft.rubric_id}/v/{draft.number}/", "#criteria"),
                (f"/p/{project.slug}/people/", "main"),
                ("/api/docs", "#swagger-ui"),
            ]:
                found += _visit(page, base, path, ready)
            found += console

            page, console = _log_in(context, base, "ann")
            found += _visit(page, base, f"/p/{project.slug}/label/", "#judgment-form")
            for key in ("2", "q", "s", "z", "n"):  # answer and submit: htmx swaps in the next comparison
                page.keyboard.press(key)
            before = page.get_attribute("#comparison", "data-assignment")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "(b) => { const s = document.getElementById('comparison'); return s && s.dataset.assignment !== b; }",
                arg=before,
            )
            page.keyboard.press("?")  # the guidelines panel loads by fetch
            page.wait_for_load_state("networkidle")
            found += [f"workbench after submit: {v}" for v in page.evaluate("window.__csp")] + console
            browser.close()
    finally:
        server.stop()
        connections.close_all()
    assert not found, "\n".join(found)
