"""The Celery app. Queues: `default` (housekeeping), `cpu` (imports, scoring, CPU training), `gpu` (training)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("arbiter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "cpu", "gpu")]
app.conf.task_routes = {
    "annotate.tasks.*": {"queue": "cpu"},
    "curation.tasks.*": {"queue": "cpu"},
    "insights.tasks.*": {"queue": "cpu"},
    "rewardtrain.tasks.train_run": {"queue": "gpu"},  # the caller passes queue="cpu" when asked
    "rewardtrain.tasks.*": {"queue": "cpu"},
}
app.autodiscover_tasks()
# Periodic checks of the database (the embedded worker runs with -B): the sweep re-queues runs whose
# heartbeat stopped (and the job sweep, import/export/snapshot jobs); the retrain check starts runs for projects with retrain_every set; active models score
# responses imported since they were activated.
app.conf.beat_schedule = {
    "rewardtrain-sweep-runs": {"task": "rewardtrain.tasks.sweep_runs", "schedule": 30.0},
    "curation-sweep-jobs": {"task": "curation.tasks.sweep_jobs", "schedule": 30.0},
    "rewardtrain-check-retrain": {"task": "rewardtrain.tasks.check_retrain", "schedule": 60.0},
    "rewardtrain-score-new-responses": {"task": "rewardtrain.tasks.score_active_models", "schedule": 300.0},
}


def ensure_broker_folders() -> None:
    """The filesystem transport needs its folders to exist before a producer or a worker touches them."""
    from django.conf import settings

    opts = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        if key in opts:
            os.makedirs(opts[key], exist_ok=True)
