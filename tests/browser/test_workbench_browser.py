"""The annotator's main journey in a real Chromium against the real ASGI server and PostgreSQL.

Labels by keyboard only, reloads mid-comparison and finds the draft, double-submits and gets one judgment,
checks that a <script> in the data never runs, and that a second annotator never receives a comparison
already at k. Writes the workbench screenshot to $ARBITER_SCREENSHOT when set (docs/workbench.png).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections
from django.db.models import Count

from annotate.models import Assignment, Comparison, Judgment
from projects.models import Membership, Project
from tests.backends import CHROMIUM_ARGS, chromium_path
from tests.conftest import PASSWORD, make_user
from tests.factories import make_comparison
from tests.servers import start_asgi

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = (
    '<script>window.__pwned = 1</script>\n\n<img src=x onerror="window.__pwned = 2">\n\nPlain **answer**.'
)

SHOWCASE_PROMPT = [
    {"role": "system", "content": "You are a careful Python tutor."},
    {"role": "user", "content": "How do I read a file line by line in Python?"},
    {"role": "assistant", "content": "Do you want the lines with or without their newline?"},
    {"role": "user", "content": "Without, please — and the file may be large."},
]
SHOWCASE_A = (
    "Iterate over the file object; it reads lazily, so large files are fine:\n\n"
    '```python\nwith open(path, encoding="utf-8") as fh:\n    for line in fh:\n        print(line.rstrip("\\n"))\n```\n\n'
    '- `rstrip("\\n")` drops only the newline\n- the `with` block closes the file'
)
SHOWCASE_B = (
    "Use `readlines()`:\n\n```python\nlines = open(path).readlines()\n```\n\n"
    "This loads the **whole file** into memory, which is simple but not ideal for large files."
)


def login(page, base: str, username: str) -> None:
    page.goto(base + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/")


def current_assignment(page) -> str:
    return page.get_attribute("#comparison", "data-assignment") or ""


def answer_by_keyboard(page, justification: str = "Clearer answer.") -> None:
    for key in ("2", "q", "s", "z", "n"):
        page.keyboard.press(key)
    page.keyboard.press("/")
    page.keyboard.type(justification)
    page.keyboard.press("Escape")


def submit_and_wait(page) -> str:
    before = current_assignment(page)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(before) => { const s = document.getElementById('comparison');"
        " return s && s.dataset.assignment !== before; }",
        arg=before,
    )
    return current_assignment(page)


def test_annotator_journey_by_keyboard(tmp_path, monkeypatch):
    chromium = chromium_path()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

    project = Project.objects.create(
        name="Helpful and harmless", slug="hh", overlap_k=1, justification="optional"
    )
    hostile = make_comparison(project, "Tell me a joke", HOSTILE, "Why did the chicken cross the road?")
    Comparison.objects.filter(pk=hostile.pk).update(random_key=0.0)
    for i in range(5):
        c = make_comparison(
            project, f"Question {i}: name a colour", f"Blue, number {i}.", f"Red, number {i}."
        )
        Comparison.objects.filter(pk=c.pk).update(random_key=0.1 + i / 10)
    ann, ann2 = make_user("ann"), make_user("ann2")
    for user in (ann, ann2):
        Membership.objects.create(user=user, project=project, role=Membership.Role.ANNOTATOR)

    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional browser dependency

    server, base = start_asgi(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            one = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = one.new_page()
            login(page, base, "ann")
            page.goto(base + "/p/hh/label/")
            page.wait_for_selector("#judgment-form")

            # 1. The hostile comparison comes first: its <script> and onerror never run.
            first = current_assignment(page)
            assert page.evaluate("window.__pwned") is None
            assert "<script>window.__pwned" in page.inner_text(".responses")

            # 2. Label by keyboard only.
            answer_by_keyboard(page)
            second = submit_and_wait(page)
            assert second and second != first

            # 3. Half-answer, let the autosave run, reload: the draft is back.
            page.keyboard.press("6")
            page.keyboard.press("e")
            page.wait_for_function(
                "() => document.getElementById('draft-state').textContent === 'Draft saved'"
            )
            page.reload()
            page.wait_for_selector("#judgment-form")
            assert current_assignment(page) == second
            assert page.is_checked("input[name=preference][value='2']")
            assert page.is_checked("input[name=helpfulness][value=right]")
            for key in ("s", "z", "n"):
                page.keyboard.press(key)
            third = submit_and_wait(page)

            # 4. Double submit: the same form posted twice at once records one judgment.
            answer_by_keyboard(page, "Double.")
            statuses = page.evaluate(
                """async () => {
                    const form = document.getElementById('judgment-form');
                    const body = () => new URLSearchParams(new FormData(form));
                    const send = () => fetch(form.action, {method: 'POST', body: body(),
                        headers: {'HX-Request': 'true'}, credentials: 'same-origin'});
                    const rs = await Promise.all([send(), send()]);
                    return rs.map(r => r.status);
                }"""
            )
            assert statuses == [200, 200]
            assert Judgment.objects.filter(assignment_id=int(third)).count() == 1

            # 5. A second annotator in another context: never a comparison already at k (k = 1).
            two = browser.new_context(viewport={"width": 900, "height": 900})
            page2 = two.new_page()
            login(page2, base, "ann2")
            page2.goto(base + "/p/hh/label/")
            page2.wait_for_selector("#comparison")
            seen2 = []
            while page2.query_selector("#judgment-form"):
                seen2.append(int(current_assignment(page2)))
                answer_by_keyboard(page2, "Second annotator.")
                if len(seen2) == 1:
                    # Unsafe, a harm category and a severity, by keyboard too; guidelines one key away.
                    page2.keyboard.press("x")
                    page2.keyboard.press("f")
                    page2.keyboard.press("Space")
                    page2.keyboard.press("Escape")
                    page2.keyboard.press("o")
                    page2.keyboard.press("?")
                    assert page2.is_visible("#guidelines")
                    page2.keyboard.press("?")
                page2.keyboard.press("Enter")
                page2.wait_for_function(
                    "(before) => { const s = document.getElementById('comparison');"
                    " return s && s.dataset.assignment !== String(before); }",
                    arg=seen2[-1],
                )
            assert "All done" in page2.inner_text("#comparison")
            flagged = Judgment.objects.get(assignment_id=seen2[0])
            left = flagged.assignment.shown_left
            assert getattr(flagged, f"{left}_safe") is False
            assert getattr(flagged, f"{left}_harm_categories") == [project.harm_categories[0]]
            assert getattr(flagged, f"{left}_severity") == "severe"
            mine = set(Judgment.objects.filter(annotator__user=ann).values_list("comparison_id", flat=True))
            theirs = set(Assignment.objects.filter(pk__in=seen2).values_list("comparison_id", flat=True))
            assert mine and theirs and not (mine & theirs)
            over_k = Comparison.objects.annotate(n=Count("judgments")).filter(n__gt=1)
            assert not over_k.exists()

            # Labelling continues in the first context after the other annotator emptied the pool.
            page.reload()
            page.wait_for_selector("#comparison")
            assert page.evaluate("window.__pwned") is None

            # 6. The screenshot: a benign, multi-turn comparison with Markdown and code.
            demo = Project.objects.create(
                name="Python tutoring",
                slug="tutoring",
                overlap_k=3,
                guidelines="Prefer answers that are correct, safe and efficient.",
            )
            Membership.objects.create(user=ann, project=demo, role=Membership.Role.ANNOTATOR)
            make_comparison(demo, SHOWCASE_PROMPT, SHOWCASE_A, SHOWCASE_B)
            page.goto(base + "/p/tutoring/label/")
            page.wait_for_selector("#judgment-form")
            right_is_streaming = "readlines" not in page.inner_text("[data-shown=right]")
            for key in (
                "6" if right_is_streaming else "2",
                "e" if right_is_streaming else "q",
                "s",
                "z",
                "n",
            ):
                page.keyboard.press(key)
            page.keyboard.press("/")
            page.keyboard.type("Streams the file instead of loading it all into memory.")
            page.keyboard.press("Escape")
            shot = Path(os.environ.get("ARBITER_SCREENSHOT") or tmp_path / "workbench.png")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            browser.close()
            # ORM calls made while Playwright's loop runs use their own connection: give it back.
            connections.close_all()
    finally:
        server.stop()
