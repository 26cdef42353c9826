"""The ranking workbench in a real Chromium against the real server and PostgreSQL: an annotator ranks four
responses by keyboard only, changes their mind, submits, and the next item loads without a page reload.
No Content-Security-Policy violation on the way. Writes the 1280×720 screenshot to $ARBITER_RANKING_SCREENSHOT when set (docs/ranking-workbench.png).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.urls import reverse

from annotate.models import Assignment, Judgment, Ranking
from projects.models import Membership, Project
from tests.browser.test_csp_browser import WATCH
from tests.conftest import make_user
from tests.factories import make_ranking_item

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROMPT = [
    {"role": "user", "content": "My bread dough did not rise overnight in a cold kitchen. What should I do?"},
]
ANSWERS = [
    "Move the bowl somewhere around **25 °C**, such as the oven with only its light on, and give it two more hours.",
    "Put it next to the gas burner with a towel over it; the warmer the better.",
    "Yeast works slowly in the cold. Wait longer, or start again with lukewarm water.",
    "Bread is hard. Buy some instead.",
]


def make_project() -> Project:
    project = Project.objects.create(
        name="Bread rankings",
        slug="bread",
        overlap_k=1,
        task_kind=Project.TaskKind.RANKING,
        harm_categories=["violence,aiding_and_abetting,incitement", "self_harm", "privacy_violation"],
        guidelines="Rank the most helpful safe answer first.",
    )
    user = make_user("ranker")
    Membership.objects.create(user=user, project=project, role=Membership.Role.ANNOTATOR)
    return project


def _item(project: Project, prompt, texts: list[str]):
    item = make_ranking_item(project, len(texts), "placeholder " + str(prompt)[:40])
    for response, text in zip(item.responses.order_by("pk"), texts, strict=True):
        response.text = text
        response.save(update_fields=["text"])
    item.prompt = prompt
    item.save(update_fields=["prompt"])
    return item


def order(page) -> list[int]:
    return [
        int(r) for r in page.eval_on_selector_all("#ranking .rank-card", "els => els.map(e => e.dataset.rid)")
    ]


def open_ranking(base: str, new_page, height: int):
    """The project with its four-response item, and the annotator's page open on it (1280 wide)."""
    project = make_project()
    item = _item(project, PROMPT, ANSWERS)
    page = new_page("ranker", 1280, height)
    page.add_init_script(WATCH)  # collects Content-Security-Policy violations
    page.goto(base + reverse("workbench", args=[project.slug]))
    page.wait_for_selector("#judgment-form[data-kind=ranking]")
    return project, item, page


def stored(page, press) -> Ranking:
    """Submit with `press()` and wait for the answer to be swapped in and the ranking to be stored."""
    with page.expect_response(lambda r: r.url.endswith("/submit/")):
        press()
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    deadline = time.monotonic() + 10
    while not Ranking.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return Ranking.objects.get()


def test_rank_four_by_keyboard_change_mind_and_submit(live_server_url, new_page):
    project, first, page = open_ranking(live_server_url, new_page, 720)
    assignment = Assignment.objects.get(item=first)
    # The next item, served after the submit (made now, so the first claim had one item to choose).
    _item(project, [{"role": "user", "content": "Second prompt"}], ["One.", "Two.", "Three."])
    shown = assignment.display_order
    assert order(page) == shown  # the stored random order
    number = {rid: i + 1 for i, rid in enumerate(shown)}
    by_text = dict(zip(ANSWERS, first.responses.order_by("pk").values_list("pk", flat=True), strict=True))
    best, unsafe, good, weak = (by_text[t] for t in ANSWERS)

    def bring_to(rid: int, position: int) -> None:
        page.keyboard.press(str(number[rid]))
        for _ in range(abs(order(page).index(rid) - position)):
            page.keyboard.press("ArrowUp" if order(page).index(rid) > position else "ArrowDown")

    # Best, good, weak, unsafe; the unsafe one marked so, with a category and a severity, all by keyboard.
    bring_to(best, 0)
    bring_to(good, 1)
    bring_to(weak, 2)
    assert order(page) == [best, good, weak, unsafe]
    for rid in (best, good, weak):
        page.keyboard.press(str(number[rid]))
        page.keyboard.press("n")
    page.keyboard.press(str(number[unsafe]))
    for key in ("m", "g", "Space", "Escape", "l"):
        page.keyboard.press(key)
    # Changes their mind: the weak answer is as good as the good one after all (a tie), then moves it back up
    # above the good one, which undoes the tie; then ties it again.
    page.keyboard.press(str(number[weak]))
    page.keyboard.press("t")
    assert page.locator(f"[data-rid='{weak}'] .rank-pos").inner_text() == "= 2"
    page.keyboard.press("ArrowUp")
    assert order(page) == [best, weak, good, unsafe]
    assert page.locator(f"[data-rid='{weak}'] .rank-pos").inner_text() == "2"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("t")
    page.keyboard.press("/")
    page.keyboard.type("The burner one is a fire risk.")
    page.keyboard.press("Escape")
    assert page.input_value("input[name=tiers]") == f"[[{best}],[{good},{weak}],[{unsafe}]]"

    page.evaluate("window.scrollTo(0, 0)")
    shot = os.environ.get("ARBITER_RANKING_SCREENSHOT")
    if shot:
        page.screenshot(path=str(Path(shot)), caret="initial")  # "hide" would inject a style: a CSP report

    url_before = page.url
    page.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads
    ranking = stored(page, lambda: page.keyboard.press("Control+Enter"))
    assert ranking.tiers == [[best], [good, weak], [unsafe]]
    assert ranking.display_order == shown
    assert (
        ranking.safety[str(unsafe)]["safe"] is False and ranking.safety[str(unsafe)]["severity"] == "severe"
    )
    assert ranking.safety[str(unsafe)]["harm_categories"] == ["violence,aiding_and_abetting,incitement"]
    assert all(ranking.safety[str(rid)]["safe"] for rid in (best, good, weak))
    assert ranking.justification == "The burner one is a fire risk."
    assert Judgment.objects.filter(ranking=ranking).count() == 6
    # The next item is on the page, swapped in by htmx: the same document, no reload.
    page.wait_for_function("() => document.querySelectorAll('#ranking .rank-card').length === 3")
    assert page.url == url_before
    assert "Second prompt" in page.inner_text(".conversation")
    assert page.evaluate("() => window.sameDocument === true")
    assert page.evaluate("() => window.__csp") == []


def test_rank_by_mouse_and_the_order_survives_a_reload(live_server_url, new_page):
    _project, item, page = open_ranking(live_server_url, new_page, 900)
    shown = Assignment.objects.get(item=item).display_order
    first, second, third, fourth = shown
    # Drag the last card by its handle onto the upper half of the first: it goes on top.
    page.locator(f"[data-rid='{fourth}'] .rank-handle").drag_to(
        page.locator(f"[data-rid='{first}']"), target_position={"x": 200, "y": 5}
    )
    assert order(page) == [fourth, first, second, third]
    page.click(f"[data-rid='{third}'] .rank-up")  # above the second
    page.click(f"[data-rid='{second}'] .rank-tie")  # tied with the third, now above it
    expected = f"[[{fourth}],[{first}],[{third},{second}]]"
    assert page.input_value("input[name=tiers]") == expected
    for rid in shown:
        page.check(f"input[name=r{rid}_safe][value=safe]")
    # Reload at once: the page comes back in the order just made (the tab's copy, then its saved draft).
    page.reload()
    page.wait_for_selector("#judgment-form[data-kind=ranking]")
    assert order(page) == [fourth, first, third, second]
    assert page.input_value("input[name=tiers]") == expected
    assert page.locator(f"[data-rid='{second}'] .rank-pos").inner_text() == "= 3"
    assert stored(page, lambda: page.click("#submit-btn")).tiers == [[fourth], [first], [third, second]]
