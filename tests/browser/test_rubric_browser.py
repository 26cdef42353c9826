"""A researcher's rubric journey in a real Chromium against the real ASGI server: create a rubric with four
criteria, reorder by keyboard and by dragging, publish, pin it on a project; the rubric page shows scores;
an annotator answers the checklist in the workbench by keyboard (once the workbench is merged)."""

from __future__ import annotations

import time

import pytest
from django.db import connections
from django.urls import reverse

from projects.models import Project
from rubrics import services
from rubrics.models import CriterionAnswer, Rubric
from tests.backends import CHROMIUM_ARGS, chromium_path
from tests.conftest import PASSWORD
from tests.factories import add_judgment, crowd_annotator, make_comparison
from tests.rubrics.conftest import build_rubric
from tests.servers import start_asgi

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(tmp_path):
    proc, base_url = start_asgi(tmp_path)
    yield base_url
    proc.stop()


@pytest.fixture
def browser(server, monkeypatch):
    path = chromium_path()
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls stay synchronous.
    # Set after the server started, so the server process does not inherit it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
        # The connection the test opened while Playwright's loop ran must not outlive it (PostgreSQL's pool
        # would keep it checked out, and the test database could not be dropped at the end).
        connections.close_all()


def log_in(browser, base_url, user):
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(base_url + "/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    return page


def criteria_texts(page) -> list[str]:
    return page.locator("[data-criterion-row] .criterion-text").all_inner_texts()


def test_researcher_creates_reorders_publishes_and_pins_a_rubric(server, browser, researcher, project):
    page = log_in(browser, server, researcher)
    page.goto(server + "/rubrics/")
    page.fill("#new-rubric input[name=name]", "Browser rubric")
    page.fill("#new-rubric textarea[name=description]", "Made in Chromium")
    page.click("#new-rubric button[type=submit]")
    page.wait_for_url("**/rubrics/*/v/1/")
    page.evaluate("window.__noReload = true")

    for text, category in [
        ("States the answer first", "essential"),
        ("Gives a reason", "important"),
        ("Uses a list", "optional"),
        ("Invents facts", "pitfall"),
    ]:
        count = page.locator("[data-criterion-row]").count()
        page.fill("#add-criterion textarea[name=text]", text)
        page.select_option("#add-criterion select[name=category]", category)
        page.click("#add-criterion button[type=submit]")
        page.wait_for_function(
            f"() => document.querySelectorAll('[data-criterion-row]').length === {count + 1}"
        )
    assert criteria_texts(page) == [
        "States the answer first",
        "Gives a reason",
        "Uses a list",
        "Invents facts",
    ]

    # Keyboard: focus the last criterion, Alt+ArrowUp moves it up one place and keeps the focus on it.
    page.locator('[data-criterion-row][data-key="c4"]').focus()
    page.keyboard.press("Alt+ArrowUp")
    page.wait_for_function("() => document.querySelectorAll('[data-criterion-row]')[2].dataset.key === 'c4'")
    assert page.evaluate("window.__noReload") is True, "the move submitted natively and reloaded the page"
    page.wait_for_function("() => document.activeElement && document.activeElement.dataset.key === 'c4'")
    assert criteria_texts(page) == [
        "States the answer first",
        "Gives a reason",
        "Invents facts",
        "Uses a list",
    ]

    # Drag: the first criterion dropped onto the lower half of the second.
    page.evaluate("document.querySelector('[data-criteria-list]').dataset.stale = '1'")
    target = page.locator('[data-criterion-row][data-key="c2"]')
    box = target.bounding_box()
    page.locator('[data-criterion-row][data-key="c1"] .drag-handle').drag_to(
        target, target_position={"x": 20, "y": box["height"] - 6}
    )
    # The row moves at once in the page; wait for the server's list to replace it (no stale marker left).
    page.wait_for_function(
        "() => !document.querySelector('[data-criteria-list]').dataset.stale"
        " && document.querySelectorAll('[data-criterion-row]')[0].dataset.key === 'c2'"
    )
    assert criteria_texts(page) == [
        "Gives a reason",
        "States the answer first",
        "Invents facts",
        "Uses a list",
    ]

    # Edit in place: the row turns into a form, saving swaps the list back.
    page.locator('[data-criterion-row][data-key="c3"] [data-edit]').click()
    page.fill("#c-c3 textarea[name=text]", "Uses a short list")
    page.fill("#c-c3 input[name=weight]", "0.5")
    page.click("#c-c3 button[type=submit]")
    page.wait_for_selector('[data-criterion-row][data-key="c3"] >> text=Uses a short list')
    assert page.evaluate("window.__noReload") is True

    page.click("#publish-form button")
    page.wait_for_selector("text=It can no longer change")
    rubric = Rubric.objects.get(name="Browser rubric")
    version = rubric.versions.get()
    assert version.status == "published"
    assert list(version.criteria.order_by("position").values_list("key", flat=True)) == [
        "c2",
        "c1",
        "c4",
        "c3",
    ]

    page.goto(server + f"/p/{project.slug}/")
    page.click(f"a[href='/rubrics/project/{project.slug}/']")
    page.select_option("#pin-form select[name=version]", str(version.pk))
    page.click("#pin-form button")
    page.wait_for_selector("text=now uses Browser rubric v1")
    assert Project.objects.get(pk=project.pk).rubric_version == version


def test_rubric_page_shows_scores_from_criterion_answers(server, browser, researcher, project):
    version = build_rubric("Scored")
    services.project_pin_version(project=project, version=version, user=None)
    comparison = make_comparison(project)
    judgment = add_judgment(comparison, crowd_annotator(project, "someone"), preference=-2)
    services.save_rubric_answers(
        judgment.revisions.get(),
        {
            "rubric": {
                "a": {"c1": "yes", "c2": "yes", "c3": "yes", "c4": "no"},
                "b": {"c1": "no", "c2": "yes"},
            }
        },
    )
    page = log_in(browser, server, researcher)
    page.goto(server + f"/rubrics/{version.rubric_id}/")
    row = page.locator("[data-score-row]")
    assert row.count() == 1
    # A: 9/9; B: 3/8 = 0.375, an essential failed → capped at 0.5, so 0.38 stays.
    assert row.locator("[data-score-a]").inner_text() == "1.00"
    assert row.locator("[data-score-b]").inner_text() == "0.38"
    assert page.locator("[data-agreement]").inner_text() == "100%"


def test_annotator_answers_the_checklist_by_keyboard_in_the_workbench(
    server, browser, annotator, researcher, project
):
    version = build_rubric("Workbench rubric")
    services.project_pin_version(project=project, version=version, user=researcher)
    comparison = make_comparison(project, "Capital of France?", "Paris.", "It is Lyon.")
    page = log_in(browser, server, annotator)
    page.goto(server + reverse("workbench", args=[project.slug]))
    page.wait_for_selector('[data-rubric-side="a"] .rubric-item')
    # The workbench's own questions by keyboard: preference, more helpful, more harmless, both responses safe.
    for key in ("2", "q", "s", "z", "n"):
        page.keyboard.press(key)
    for side, keys in (("a", "yyyn"), ("b", "nyyy")):
        page.locator(f'[data-rubric-side="{side}"] .rubric-item').first.focus()
        for key in keys:
            page.keyboard.press(key)
    for side, expected in (("a", ["yes", "yes", "yes", "no"]), ("b", ["no", "yes", "yes", "yes"])):
        for key, value in zip(["c1", "c2", "c3", "c4"], expected, strict=True):
            assert page.locator(f'input[name="rubric-{side}-{key}"][value="{value}"]').is_checked()
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 20
    while not comparison.judgments.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    judgment = comparison.judgments.get()
    answers = CriterionAnswer.objects.filter(revision__judgment=judgment)
    assert answers.count() == 8
    assert set(answers.values_list("version_id", flat=True)) == {version.pk}
    page = log_in(browser, server, researcher)
    page.goto(server + f"/rubrics/{version.rubric_id}/")
    assert page.locator("[data-score-row]").count() == 1
    # A: essential, important, optional met, pitfall avoided: (5 + 3 + 1) / 9 = 1.00.
    # B: essential failed (cap 0.5), important + optional met, pitfall hit: (3 + 1 − 2) / 9 = 0.22.
    assert page.locator("[data-score-a]").inner_text() == "1.00"
    assert page.locator("[data-score-b]").inner_text() == "0.22"


def test_preview_checklist_is_answered_by_keyboard_and_scored(server, browser, researcher, project):
    version = build_rubric("Preview me", publish=False)
    comparison = make_comparison(project, "Capital of France?", "**Paris**", "<b>Lyon</b>")
    page = log_in(browser, server, researcher)
    page.goto(server + f"/rubrics/{version.rubric_id}/v/1/preview/{project.slug}/")
    # Markdown renders, raw HTML from the data does not.
    assert page.locator(".preview-grid strong", has_text="Paris").count() == 1
    assert page.locator(".preview-grid b").count() == 0
    page.evaluate("window.__noReload = true")
    # Focus the first item of A and answer all four; focus moves on by itself, into B's checklist.
    page.locator('[data-rubric-side="a"] .rubric-item').first.focus()
    for key in "yayy" + "nnyn":
        page.keyboard.press(key)
    checked = page.eval_on_selector_all(
        "input[type=radio]:checked", "els => els.map(e => e.name + '=' + e.value)"
    )
    assert checked == [
        "rubric-a-c1=yes",
        "rubric-a-c2=na",
        "rubric-a-c3=yes",
        "rubric-a-c4=yes",
        "rubric-b-c1=no",
        "rubric-b-c2=no",
        "rubric-b-c3=yes",
        "rubric-b-c4=no",
    ]
    page.click("#preview-form button[type=submit]")
    # A: (5 + 1 − 2) / 6 = 0.67; B: 1 / 9 = 0.11 (an essential failed; already under the cap).
    page.wait_for_selector("[data-preview-score-a]")
    assert page.locator("[data-preview-score-a]").inner_text() == "0.67"
    assert page.locator("[data-preview-score-b]").inner_text() == "0.11"
    assert page.evaluate("window.__noReload") is True
    assert not comparison.judgments.exists()
