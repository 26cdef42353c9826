"""Celery tasks of the training side: thin, an id in, the work in runner/services/scoring_service.

train_run acknowledges late and is sent with transaction.on_commit (services.enqueue_run); the runner's
claim makes a duplicate delivery harmless, and the beat task sweep_runs (not the broker) re-queues runs
whose worker died. The web process never imports this module (it sends tasks by name), so torch, which
scoring_service and evaluation load, stays out of it.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from projects.models import Project

from . import comparison, evaluation, rubric_reward, runner, scoring_service, services
from .models import ModelVersion

log = logging.getLogger(__name__)


@shared_task(
    name="rewardtrain.tasks.train_run",
    acks_late=True,
    soft_time_limit=settings.ARBITER_TRAIN_SOFT_TIME_LIMIT,
    time_limit=settings.ARBITER_TRAIN_TIME_LIMIT,
)
def train_run(run_id: int) -> str:
    return runner.execute_run(run_id)


@shared_task(name="rewardtrain.tasks.sweep_runs")
def sweep_runs() -> dict:
    counts = services.sweep_runs()
    if any(counts.values()):
        log.info("run sweep: %s", counts)
    return counts


@shared_task(name="rewardtrain.tasks.check_retrain")
def check_retrain() -> list[int]:
    started = []
    for project in Project.objects.filter(deleted_at__isnull=True, retrain_every__isnull=False):
        run = services.check_retrain(project=project)
        if run is not None:
            started.append(run.pk)
    return started


@shared_task(name="rewardtrain.tasks.score_project", acks_late=True)
def score_project(model_version_id: int) -> int:
    version = ModelVersion.objects.filter(pk=model_version_id).first()
    if version is None:
        return 0
    return scoring_service.score_project(version=version)


@shared_task(name="rewardtrain.tasks.score_active_models")
def score_active_models() -> int:
    """Periodic: the active models score responses added since they were activated (new imports)."""
    return sum(
        scoring_service.score_project(version=version, only_missing=True)
        for version in ModelVersion.objects.filter(is_active=True, project__deleted_at__isnull=True)
    )


@shared_task(name="rewardtrain.tasks.evaluate_upload", acks_late=True)
def evaluate_upload(job_id: int) -> str:
    return evaluation.run_job(job_id)


@shared_task(name="rewardtrain.tasks.fit_rubric_reward", acks_late=True)
def fit_rubric_reward(job_id: int) -> str:
    """Fit one rubric reward (RubricRewardJob row) on the `cpu` queue; the row records the outcome."""
    return rubric_reward.run_fit_job(job_id).status


@shared_task(name="rewardtrain.tasks.compare_models", acks_late=True)
def compare_models(job_id: int) -> str:
    """Score an evaluation set with several model versions (ModelComparison row) on the `cpu` queue."""
    return comparison.run_job(job_id)
