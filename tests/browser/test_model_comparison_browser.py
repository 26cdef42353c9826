"""The model comparison page in a real Chromium against the real ASGI server: a researcher goes from the models page
to the evaluation sets, opens a finished comparison of two tiny models on a RewardBench-style set, reads the
accuracy per subset, the calibration and the margin charts, and follows a disagreement to the comparison
browser. Writes the page's screenshot to $ARBITER_COMPARISON_SCREENSHOT when set (docs/model-comparison.png)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rewardtrain import comparison
from rewardtrain.eval_sets import start_comparison
from tests.factories import make_comparison
from tests.rewardtrain.apphelpers import finished_version
from tests.rewardtrain.test_eval_sets import add_set, rewardbench_rows, second_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_reads_a_model_comparison(live_server_url, new_page, researcher, project, tmp_path):
    rows = rewardbench_rows()
    # Line 8 (labelled rude-over-helpful, so the trained model is against the label) is also a project comparison.
    in_project = make_comparison(project, rows[7]["prompt"], rows[7]["rejected"], rows[7]["chosen"])
    eval_set = add_set(project, tmp_path, rows=rows)
    trained = finished_version(project, "bt")
    rev = second_version(trained)
    job = start_comparison(eval_set=eval_set, model_ids=[trained.pk, rev.pk], send=False)
    assert comparison.run_job(job.pk) == "succeeded"

    page = new_page(researcher.username, 1400, 900)
    page.goto(f"{live_server_url}/p/{project.slug}/models/")
    page.click("text=Evaluation sets and comparisons")
    assert "chat 4, chat-hard 4" in page.inner_text("#eval-sets")
    assert page.locator("#compare-form input[name=models]").count() == 2
    page.click(f"a[href$='/eval-comparisons/{job.pk}/']")
    page.wait_for_url(f"**/p/{project.slug}/eval-comparisons/{job.pk}/")
    assert page.inner_text("#comparison-status") == "Succeeded"
    chat = page.inner_text("#accuracy-table tr[data-subset=chat]")
    hard = page.inner_text("#accuracy-table tr[data-subset=chat-hard]")
    assert chat.startswith("chat\t4/4 = 1.000") and hard.startswith("chat-hard\t2/4 = 0.500")
    assert page.locator("#calibration-table tbody tr").count() == 2
    charts = page.locator("svg.chart")
    assert (
        charts.count() == 5
    )  # the accuracy intervals; a margin histogram and a reliability diagram per model
    for chart in charts.all():
        assert chart.bounding_box()["width"] > 100

    shot = Path(os.environ.get("ARBITER_COMPARISON_SCREENSHOT") or tmp_path / "model-comparison.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 30_000

    link = page.locator(f"#disagreements a[href$='/comparisons/{in_project.pk}/']")
    assert link.count() == 1
    link.click()
    page.wait_for_url(f"**/p/{project.slug}/comparisons/{in_project.pk}/")
    assert rows[7]["chosen"] in page.content()
