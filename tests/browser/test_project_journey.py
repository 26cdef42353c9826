"""The whole journey in the app, in a real Chromium against the real server, a Celery worker and PostgreSQL
(issue 19): an admin creates a project and invites people; a researcher configures it, writes and publishes a
rubric, imports a file; two annotators label by keyboard only, changing their minds on every kind of answer
(unsafe -> safe with categories and severity included), and each comparison is stored as last answered; the
researcher freezes a snapshot, starts a training run and reads the dashboard. No Django admin anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from annotate.models import Judgment
from config.celery import ensure_broker_folders
from curation.models import DatasetSnapshot, ImportJob
from projects.access import ADMIN_GROUP
from projects.models import Project
from rewardtrain.models import TrainingRun
from rubrics.models import CriterionAnswer
from tests.conftest import make_user
from tests.rewardtrain.apphelpers import wait_for
from tests.rewardtrain.rewardtrain_toys import save_tiny_bert
from tests.servers import start_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "import" / "trl_good.jsonl"


def submit_form(page, button_text: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button_text).click()


def tab_to(page, selector: str) -> None:
    """Move the keyboard focus with Tab until it is on an element matching `selector`."""
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement && document.activeElement.matches({selector!r})"):
            return
    raise AssertionError(f"Tab never reached {selector}")


def label_by_keyboard(page) -> int:
    """Answer the comparison on screen, changing every answer once, then submit; returns its assignment id."""
    assignment = int(page.get_attribute("#comparison", "data-assignment"))
    keys = [
        "2", "6",  # overall: left better … no, right better
        "q", "e",  # more helpful: left … right
        "a", "d",  # more harmless: left … right
        "x", "f", "Space", "Escape", "o", "z",  # left: unsafe, a category, severe … safe after all
        "z", "m", "g", "Space", "Escape", "j",  # right: safe … unsafe, a category, minor
    ]  # fmt: skip
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.press("/")
    page.keyboard.type("First thought.")
    page.keyboard.press("Control+A")
    page.keyboard.type("Final answer.")
    page.keyboard.press("Escape")
    # The checklist: yes on both sides, then no on both.
    for answer in ("y", "n"):
        tab_to(page, "[data-shown=left] .rubric-item")
        page.keyboard.press(answer)  # focus moves on to the right response's item
        page.keyboard.press(answer)
        page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(before) => { const s = document.getElementById('comparison');"
        " return s && s.dataset.assignment !== String(before); }",
        arg=assignment,
    )
    return assignment


def test_a_project_from_creation_to_a_trained_model_in_the_app(live_server_url, new_page, tmp_path_factory):
    base = live_server_url
    admin = make_user("ada")
    admin.groups.add(Group.objects.get_or_create(name=ADMIN_GROUP)[0])
    for name in ("rita", "ann1", "ann2"):
        make_user(name)
    model_dir = save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
    ensure_broker_folders()
    worker = start_worker(tmp_path_factory.mktemp("worker"), queues="default,cpu,gpu", name="journey")
    try:
        # 1. The admin creates the project and invites a researcher and two annotators.
        page = new_page("ada", 1280, 900)
        page.get_by_role("link", name="New project").click()
        page.fill("#id_name", "Journey")
        page.fill("#id_slug", "journey")
        submit_form(page, "Create project")
        project = Project.objects.get(slug="journey")
        page.get_by_role("link", name="People").click()
        for username, role in (("rita", "researcher"), ("ann1", "annotator"), ("ann2", "annotator")):
            page.fill("input[name=username]", username)
            page.select_option("select[name=role]", role)
            submit_form(page, "Invite")
        assert set(project.memberships.values_list("user__username", "role")) == {
            ("rita", "researcher"),
            ("ann1", "annotator"),
            ("ann2", "annotator"),
        }

        # 2. The researcher configures it, writes and publishes a rubric, pins it, imports a file.
        page = new_page("rita", 1280, 900)
        page.get_by_role("link", name="Settings").click()
        page.fill("#id_overlap_k", "2")
        page.fill("#id_guidelines", "Prefer the **safer** answer.")
        submit_form(page, "Preview")
        assert page.inner_text("#preview-guidelines strong") == "safer"
        submit_form(page, "Save settings")
        project.refresh_from_db()
        assert project.overlap_k == 2 and project.guidelines == "Prefer the **safer** answer."

        page.goto(base + "/")
        page.get_by_role("link", name="Rubrics").click()
        page.fill("#new-rubric input[name=name]", "Journey rubric")
        page.click("#new-rubric button[type=submit]")
        page.wait_for_url("**/rubrics/*/v/1/")
        page.fill("#add-criterion textarea[name=text]", "Answers the question")
        page.select_option("#add-criterion select[name=category]", "essential")
        page.click("#add-criterion button[type=submit]")
        page.wait_for_selector("[data-criterion-row]")
        page.click("#publish-form button")
        page.wait_for_selector("text=It can no longer change")
        page.goto(base + "/rubrics/project/journey/")
        page.select_option("#pin-form select[name=version]", label="Journey rubric v1")
        submit_form(page, "Use this version")
        project.refresh_from_db()
        assert project.rubric_version is not None

        page.goto(base + "/")
        page.get_by_role("link", name="Import data").click()
        page.select_option("select[name=project]", label="Journey")
        page.select_option("select[name=format]", "trl")
        page.set_input_files("input[name=file]", str(FIXTURE))
        submit_form(page, "Upload and import")
        job = wait_for(
            lambda: ImportJob.objects.filter(project=project, status="succeeded").first(),
            120,
            "the import",
            [worker],
        )
        page.wait_for_selector("text=Committed.")
        comparisons = job.report["comparisons_created"]
        assert comparisons >= 2

        # 3. Two annotators label everything by keyboard, changing their minds on every answer.
        seen = {}
        for username in ("ann1", "ann2"):
            annotator_page = new_page(username, 1280, 720)
            annotator_page.get_by_role("link", name="Label").click()
            annotator_page.wait_for_selector("#comparison")
            seen[username] = []
            while annotator_page.query_selector("#judgment-form"):
                seen[username].append(label_by_keyboard(annotator_page))
            assert "All done" in annotator_page.inner_text("#comparison")
            assert len(seen[username]) == comparisons
        crowd = Judgment.objects.filter(project=project, assignment__isnull=False).select_related(
            "assignment"
        )
        assert crowd.count() == 2 * comparisons
        for judgment in crowd:
            left = judgment.assignment.shown_left
            right = "b" if left == "a" else "a"
            assert judgment.preference == (2 if left == "a" else -2)  # shown +2: right better
            assert judgment.helpfulness == judgment.harmlessness == right
            assert getattr(judgment, f"{left}_safe") is True
            assert getattr(judgment, f"{left}_harm_categories") == []
            assert getattr(judgment, f"{left}_severity") is None
            assert getattr(judgment, f"{right}_safe") is False
            assert getattr(judgment, f"{right}_harm_categories") == [project.harm_categories[0]]
            assert getattr(judgment, f"{right}_severity") == "minor"
            assert judgment.justification == "Final answer."
            assert judgment.revision_count == 1  # one submit per comparison: the changes happened before it
            answers = CriterionAnswer.objects.filter(revision__judgment=judgment)
            assert sorted(answers.values_list("side", "answer")) == [("a", "no"), ("b", "no")]

        # 4. The researcher freezes a snapshot, trains on it and reads the dashboard.
        page.goto(base + "/p/journey/")
        page.get_by_role("link", name="Snapshots").click()
        page.fill("input[name=name]", "journey-1")
        submit_form(page, "Create snapshot")
        snapshot = wait_for(
            lambda: DatasetSnapshot.objects.filter(project=project, name="journey-1").first(),
            120,
            "the snapshot",
            [worker],
        )
        assert snapshot.pair_count >= 2
        page.goto(base + "/p/journey/training/new/")
        page.select_option("select[name=snapshot]", str(snapshot.pk))
        page.fill("input[name=base_model]", model_dir)
        page.select_option("select[name=queue]", "cpu")
        page.fill("input[name=batch_size]", "2")
        page.fill("input[name=max_length]", "32")
        page.fill("input[name=lr]", "0.001")
        page.fill("input[name=checkpoint_every]", "1")
        submit_form(page, "Start")
        run = TrainingRun.objects.get(project=project)
        assert run.config["checkpoint_every"] == 1
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).exists(),
            240,
            "the training run",
            [worker],
        )
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        page.reload()
        assert "Succeeded" in page.inner_text("#run-progress")
        assert page.locator("#run-progress .error").count() == 0

        page.goto(base + "/p/journey/")
        page.get_by_role("link", name="Dashboard").click()
        page.wait_for_selector("#dashboard-figures table.figures", timeout=120_000)
        assert "Figures computed" in page.inner_text("#dashboard-figures")
    finally:
        worker.stop()
