"""Retraining policy: after project.retrain_every new crowd judgments, a periodic check starts one run."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from projects.models import Project
from rewardtrain import services, tasks
from rewardtrain.models import TrainingRun
from tests.factories import add_judgment, crowd_annotator, make_comparisons
from tests.rewardtrain.apphelpers import make_snapshot


def _previous_run(project: Project) -> TrainingRun:
    run = services.start_run(
        project=project,
        objective="bt-margin",
        base_model="/models/base",
        snapshot=make_snapshot(project, 2),
        config={"epochs": 3},
        queue="cpu",
        enqueue=False,
    )
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.SUCCEEDED)
    return run


@pytest.mark.django_db
def test_check_starts_exactly_one_run_after_n_new_crowd_judgments(project):
    project.retrain_every = 3
    project.save()
    previous = _previous_run(project)
    comparisons = make_comparisons(project, 4)
    crowd = crowd_annotator(project, "crowd-1")
    source = crowd_annotator(project, "source")
    add_judgment(comparisons[0], crowd, preference=-2)
    add_judgment(comparisons[1], crowd, preference=1)
    add_judgment(comparisons[2], source, is_source=True, imported=True, choice="a")  # never counts
    assert services.new_crowd_judgments(project) == 2
    assert tasks.check_retrain() == []

    add_judgment(comparisons[3], crowd, preference=-3)
    started = tasks.check_retrain()
    assert len(started) == 1
    run = TrainingRun.objects.get(pk=started[0])
    assert run.trigger == "retrain" and run.status == "queued"
    assert (run.objective, run.base_model, run.queue) == ("bt-margin", "/models/base", "cpu")
    assert run.config == previous.config
    assert run.snapshot_id != previous.snapshot_id and run.snapshot.pairs.count() >= 3

    # Checking again starts nothing: a run is queued, and once it ends the count starts from its snapshot.
    assert tasks.check_retrain() == []
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.SUCCEEDED)
    assert services.new_crowd_judgments(project) == 0
    assert tasks.check_retrain() == []
    assert TrainingRun.objects.filter(trigger="retrain").count() == 1


@pytest.mark.django_db
def test_projects_without_the_setting_never_retrain(project):
    _previous_run(project)
    crowd = crowd_annotator(project, "crowd-1")
    for comparison in make_comparisons(project, 5):
        add_judgment(comparison, crowd, preference=-1)
    assert tasks.check_retrain() == []


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_checks_start_one_run(project, settings):
    project.retrain_every = 2
    project.save()
    _previous_run(project)
    crowd = crowd_annotator(project, "crowd-1")
    for comparison in make_comparisons(project, 2):
        add_judgment(comparison, crowd, preference=2)
    barrier = threading.Barrier(2)
    results = []

    def check() -> None:
        try:
            barrier.wait()
            results.append(services.check_retrain(project=Project.objects.get(pk=project.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r is not None for r in results) == 1
    assert TrainingRun.objects.filter(trigger="retrain").count() == 1
