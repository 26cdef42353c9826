"""The workbench's traps (issue 19), each in a real Chromium against the real server and PostgreSQL.

Each test failed on the workbench before the fix: an unsafe answer could not be taken back, the checklist's `a`
changed "More harmless", the checklist named the stored side, a reload right after a change showed the older
draft and refused the submit, a refused submit blurred the responses again, a 7-turn prompt pushed the
questions off a 1280×720 screen, and harm categories showed as raw snake_case.
Writes the 1280×720 screenshot to $ARBITER_SCREENSHOT when set (docs/workbench-1280x720.png).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import psycopg
import pytest
from django.urls import reverse

from annotate.models import Draft, Judgment
from projects.models import Membership, Project
from rubrics import services as rubric_services
from tests import servers
from tests.conftest import make_user
from tests.factories import make_comparison
from tests.rubrics.conftest import build_rubric

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEVEN_TURNS = [
    {"role": "system", "content": "You are a patient cooking assistant. Answer briefly and safely."},
    {"role": "user", "content": "I want to bake bread at home for the first time. What do I need?"},
    {
        "role": "assistant",
        "content": "Flour, water, salt and yeast; a bowl, a baking tray and an oven. "
        "A kitchen scale helps a lot, because bread is about ratios.",
    },
    {
        "role": "user",
        "content": "I have no scale. Can I measure with cups instead, and how precise must it be?",
    },
    {
        "role": "assistant",
        "content": "Yes: spoon the flour into the cup and level it. Expect some variation; "
        "adjust with a spoon of water or flour until the dough is soft but not sticky.",
    },
    {"role": "user", "content": "My dough did not rise at all overnight. The kitchen is quite cold."},
    {
        "role": "user",
        "content": "Also, is it safe to let it rise next to the gas stove with the burner on low to warm it?",
    },
]
ANSWER_A = (
    "Cold slows yeast down: move the bowl somewhere around 25 °C, such as the oven with only its light on.\n\n"
    "Do **not** leave dough next to an open flame: a towel over the bowl can catch fire."
)
ANSWER_B = "Yes, put it right next to the burner with a towel over it; the warmer the better."


def make_project(**settings) -> Project:
    project = Project.objects.create(name="Traps", slug="traps", overlap_k=1, **settings)
    user = make_user("ann")
    Membership.objects.create(user=user, project=project, role=Membership.Role.ANNOTATOR)
    return project


def open_workbench(page, base: str, project: Project) -> None:
    page.goto(base + reverse("workbench", args=[project.slug]))
    page.wait_for_selector("#judgment-form")


def submit(page) -> None:
    """Press Enter and wait for the submit's answer to be swapped in."""
    with page.expect_response(lambda r: r.url.endswith("/submit/")):
        page.keyboard.press("Enter")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")


def stored(project: Project) -> Judgment:
    deadline = time.monotonic() + 10
    while not Judgment.objects.filter(project=project).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return Judgment.objects.select_related("assignment").get(project=project)


def test_unsafe_with_categories_and_severity_can_be_changed_to_safe(live_server_url, new_page):
    project = make_project()
    make_comparison(project, "How do I sharpen a knife?", "Use a whetstone.", "Run it along a brick.")
    page = new_page("ann")
    open_workbench(page, live_server_url, project)
    # Left by keyboard: unsafe, a category, severe; then safe after all.
    for key in ("2", "q", "s", "x", "f", "Space", "Escape", "o", "z"):
        page.keyboard.press(key)
    # Right by mouse: unsafe, two categories, moderate; then safe after all.
    page.check("input[name=right_safe][value=unsafe]")
    boxes = page.locator("input[name=right_harm_categories]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.check("input[name=right_severity][value=moderate]")
    page.check("input[name=right_safe][value=safe]")
    # The hidden details hold nothing any more: nothing an annotator cannot see is sent.
    assert page.locator("input[name$=_harm_categories]:checked").count() == 0
    assert page.locator("input[name$=_severity]:checked").count() == 0
    submit(page)
    judgment = stored(project)
    assert (judgment.a_safe, judgment.b_safe) == (True, True)
    assert judgment.a_harm_categories == judgment.b_harm_categories == []
    assert judgment.a_severity is None and judgment.b_severity is None


def test_checklist_keys_do_only_what_their_hint_says_and_name_no_stored_side(live_server_url, new_page):
    project = make_project()
    version = build_rubric("Checklist")  # c1 has no "not applicable"; c2 has
    rubric_services.project_pin_version(project=project, version=version, user=None)
    make_comparison(project, "Capital of France?", "Paris.", "It is Lyon.")
    page = new_page("ann", 1400, 1000)
    open_workbench(page, live_server_url, project)
    left_list = page.locator("[data-shown=left] .rubric-checklist")
    left_list.locator(".rubric-item").first.focus()
    page.keyboard.press("a")  # c1 has no n/a: nothing happens, focus stays
    assert page.locator("input[name=harmlessness]:checked").count() == 0
    assert left_list.locator("input:checked").count() == 0
    page.keyboard.press("y")  # c1 = yes, focus moves to c2
    page.keyboard.press("a")  # c2 = n/a
    assert left_list.locator("input:checked").count() == 2
    assert left_list.locator("input[value=na]:checked").count() == 1
    assert page.locator("input[name=harmlessness]:checked").count() == 0
    # What the annotator sees names the sides as shown (left / right), never the stored A / B.
    assert "left" in left_list.locator("legend").inner_text().lower()
    text = page.inner_text("#comparison")
    assert not re.search(r"\b(response|side) [AB]\b", text), text
    # An error on an essential item (the project blocks on them) does not name the stored side either.
    Project.objects.filter(pk=project.pk).update(rubric_essential_blocks=True)
    page.locator("[data-shown=right] .rubric-item").nth(1).focus()
    page.keyboard.press("y")
    submit(page)
    errors = page.locator("[data-shown=right] .rubric-item .error")
    assert errors.count() >= 1 and errors.first.is_visible()
    text = page.inner_text("#comparison")
    assert not re.search(r"\b(response|side) [AB]\b", text), text


def test_latest_draft_wins_over_an_older_save_still_in_flight(live_server_url, new_page):
    project = make_project()
    make_comparison(project, "Pick a number", "Seven.", "Three.")
    page = new_page("ann")
    open_workbench(page, live_server_url, project)
    page.keyboard.press("2")
    page.wait_for_function("() => document.getElementById('draft-state').textContent === 'Draft saved'")
    # Change the answer and reload at once, while the draft's row is locked: the save the page sends as it
    # unloads waits in PostgreSQL and lands only after the reloaded page was served, as on a busy server.
    draft = Draft.objects.get()
    with psycopg.connect(servers.test_database_env()["DATABASE_URL"]) as blocker:
        blocker.execute("SELECT 1 FROM annotate_draft WHERE id = %s FOR UPDATE", [draft.pk])
        page.keyboard.press("6")
        page.reload()
        page.wait_for_selector("#judgment-form")
        # Give the unloading page's save the time to reach the lock (it may also never be sent: a regular
        # autosave still in flight as the page unloads takes its place; the reloaded page must cope either way).
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s"
        deadline = time.monotonic() + 5
        while (
            not blocker.execute(waiting, ["%annotate_draft%"]).fetchone()[0] and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    # (leaving the block commits: the held save goes through now)
    # The newer answer is on screen, nothing claims another tab, and the submit goes through.
    assert page.is_checked("input[name=preference][value='2']")
    for key in ("q", "s", "z", "n"):
        page.keyboard.press(key)
    page.wait_for_function("() => document.getElementById('draft-state').textContent === 'Draft saved'")
    assert "another tab" not in page.inner_text("#comparison")
    submit(page)
    judgment = stored(project)
    shown_pref = judgment.preference if judgment.assignment.shown_left == "a" else -judgment.preference
    assert shown_pref == 2
    assert not Draft.objects.exists()


def test_refused_submit_shows_each_error_beside_its_question_and_keeps_the_reveal(live_server_url, new_page):
    project = make_project(blur_content=True, justification="required")
    make_comparison(project, "Describe a fight scene", "They traded blows.", "Graphic details …")
    page = new_page("ann")
    open_workbench(page, live_server_url, project)
    page.keyboard.press("r")
    assert page.locator(".responses.blurred").count() == 0
    page.keyboard.press("x")  # left unsafe, no category, no severity; nothing else answered
    submit(page)
    assert page.locator(".responses.blurred").count() == 0
    for holder in (
        "fieldset.overall",
        "fieldset.helpfulness",
        "fieldset.harmlessness",
        "[data-shown=left] .safety .cats",
        "[data-shown=left] .safety .severity",
        "[data-shown=right] .safety",
        ".justification",
    ):
        error = page.locator(f"{holder} .field-error")
        assert error.count() == 1, holder
        assert error.is_visible(), holder
    assert page.is_checked("input[name=left_safe][value=unsafe]")


def test_long_prompt_collapses_so_questions_and_submit_fit_1280x720(live_server_url, new_page):
    project = make_project(
        harm_categories=["violence,aiding_and_abetting,incitement", "self_harm", "privacy_violation"],
        guidelines="Prefer the safer answer when both help.",
    )
    make_comparison(project, SEVEN_TURNS, ANSWER_A, ANSWER_B)
    page = new_page("ann", 1280, 720)
    open_workbench(page, live_server_url, project)
    # Earlier turns fold away; the last one stays; they open on a click.
    assert page.locator(".conversation .turn:visible").count() < len(SEVEN_TURNS)
    assert page.locator(".conversation .turn").last.is_visible()
    for selector in ("fieldset.overall", "fieldset.helpfulness", "fieldset.harmlessness", "#submit-btn"):
        box = page.locator(selector).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 720, (selector, box)

    # Readable category labels that stay inside their boxes.
    page.keyboard.press("x")
    labels = page.locator("[data-shown=left] label.cat").all_inner_texts()
    assert [t.strip() for t in labels] == [
        "Violence, aiding and abetting, incitement",
        "Self harm",
        "Privacy violation",
    ]
    overflow = page.eval_on_selector_all(
        "[data-shown=left] label.cat", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length"
    )
    assert overflow == 0
    page.keyboard.press("z")

    page.locator(".conversation summary").click()
    assert page.locator(".conversation .turn:visible").count() == len(SEVEN_TURNS)
    page.locator(".conversation summary").click()
    unsafe = "left" if "right next to the burner" in page.inner_text("[data-shown=left]") else "right"
    keys = {
        "left": ("6", "e", "x", "f", "o", "n"),  # the right one is better and safe; the left one unsafe
        "right": ("2", "q", "m", "g", "l", "z"),
    }[unsafe]
    pref, helpful, unsafe_key, cats_key, severity_key, safe_key = keys
    for key in (pref, helpful, safe_key, unsafe_key, cats_key, "Space", "Escape", severity_key, "s", "/"):
        page.keyboard.press(key)
    page.keyboard.type("Warns about the open flame.")
    page.keyboard.press("Escape")
    page.evaluate("window.scrollTo(0, 0)")
    shot = os.environ.get("ARBITER_SCREENSHOT")
    if shot:
        page.screenshot(path=str(Path(shot)))
    box = page.locator("#submit-btn").bounding_box()
    assert box and box["y"] + box["height"] <= 720
