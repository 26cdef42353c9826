"""The rubric rewards page in a real Chromium against the real ASGI server: a researcher reaches it from the
dashboard's navigation, sees every criterion with its agreement and flags, the contested comparisons, the fit's
accuracies and weights with their charts, downloads the fit's parameters and queues a new fit.
Writes the page's screenshot to $ARBITER_RUBRIC_SCREENSHOT when set (docs/rubric-rewards.png)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rewardtrain.models import RubricRewardJob
from rewardtrain.rubric_reward import fit_rubric_reward
from tests.browser.test_rubric_browser import browser, log_in, server  # noqa: F401 - fixtures
from tests.rewardtrain.rubric_fixture import build

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_reads_the_rubric_rewards_page(server, browser, researcher, project, tmp_path):  # noqa: F811
    built = build(project, n_items=120, per_item=3, seed=21)
    fit = fit_rubric_reward(
        project=project, version=built.version, snapshot=built.snapshot, model=built.model, actor=researcher
    )
    page = log_in(browser, server, researcher)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{server}/p/{project.slug}/dashboard/")
    page.click("nav.dash-nav >> text=Rubric rewards")
    page.wait_for_url(f"**/p/{project.slug}/rubric-rewards/{built.version.pk}/")
    assert page.inner_text("h1") == f"Rubric rewards · {built.version.label}"

    rows = page.locator("#criteria tr[data-criterion]")
    assert rows.count() == len(built.specs)
    assert "never discriminates" in page.inner_text("#criteria tr[data-criterion=language]")
    assert "annotators disagree" in page.inner_text("#criteria tr[data-criterion=tone]")  # 30% of answers flipped
    assert page.locator("#disagreement tr[data-disagreement]").count() == len(built.specs)
    methods = page.locator("#accuracy tr[data-method]")
    assert methods.count() == 4
    combined = page.inner_text("#accuracy tr[data-method=combined]")
    assert "Fitted criteria + reward model" in combined and "[" in combined
    # "long" is hand-set +1 but the humans dislike it: the fit's sign differs.
    assert "sign differs" in page.inner_text("#weights tr[data-weight=long]")
    assert page.locator("svg.chart").count() >= 7
    for chart in page.locator("svg.chart").all():
        assert chart.bounding_box()["width"] > 100

    with page.expect_download() as download:
        page.click("text=parameters (JSON)")
    parameters = json.loads(Path(download.value.path()).read_text())
    assert parameters["fit"] == fit.pk and parameters["weights"] == fit.weights

    shot = Path(os.environ.get("ARBITER_RUBRIC_SCREENSHOT") or tmp_path / "rubric-rewards.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000

    page.select_option("#fit-form select[name=model]", "")
    page.fill("#fit-form input[name=c]", "0.25")
    page.click("#fit-form button")
    page.wait_for_selector("text=Fit queued")
    assert page.locator("[data-job=queued]").count() == 1
    job = RubricRewardJob.objects.get()
    assert (job.options["c"], job.model_version, job.snapshot) == (0.25, None, built.snapshot)
