"""Writes of the training side: launching, cancelling, sweeping and auto-retraining runs; the model registry.

Every function here is keyword-only and runs under transaction.atomic; Celery messages are sent with
transaction.on_commit so a worker never sees a run that is not committed. The run row is the truth: a message
only says "look at run N" and may be lost or duplicated (see runner.py).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotate.models import Gold, Judgment
from config.celery import app as celery_app
from curation.models import DatasetSnapshot
from curation.snapshots import create_snapshot
from insights.consensus import ConsensusError
from projects.models import AuditEvent, Project

from .models import ModelVersion, TrainingRun
from .trainer.modes import MODES

log = logging.getLogger(__name__)

QUEUES = ("gpu", "cpu")
TRAIN_TASK = "rewardtrain.tasks.train_run"
SCORE_TASK = "rewardtrain.tasks.score_project"
OBJECTIVES = tuple(TrainingRun.Objective.values)
# What a launcher may set in a run's config (rewardtrain.trainer.training.TrainConfig, minus base_model/objective,
# which are columns of the run). Kept here so the web process validates without importing torch.
CONFIG_FIELDS = {
    "epochs": int,
    "lr": float,
    "batch_size": int,
    "grad_accum": int,
    "max_length": int,
    "seed": int,
    "eval_fraction": float,
    "warmup_ratio": float,
    "weight_decay": float,
    "checkpoint_every": int,
    "keep_checkpoints": int,
    "gradient_checkpointing": bool,
    "margin_scale": float,
    "sign_weight": float,
    "max_grad_norm": float,
    "progress_every": int,
    "group_megabatches": int,
    "bf16": bool,
    "mode": str,
    "lora_r": int,
    "lora_alpha": float,
    "lora_dropout": float,
    "packing": bool,
    "share_prompt": bool,
    "pack_length": int,
    "peak_tflops": float,
    "group_pairs": bool,
}
DEFAULT_CONFIG = {
    "epochs": 1,
    "lr": 2e-5,
    "batch_size": 16,
    "max_length": 256,
    "seed": 0,
    "eval_fraction": 0.1,
}


class RunError(ValueError):
    """A run cannot be started as asked; the message says what to change."""


def clean_config(config: dict) -> dict:
    """The run config with defaults filled in, every value checked and converted; RunError on bad input."""
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise RunError(f"unknown training option(s): {', '.join(unknown)}")
    cleaned = dict(DEFAULT_CONFIG)
    for name, value in config.items():
        if value is None:
            continue
        kind = CONFIG_FIELDS[name]
        try:
            if kind is bool:
                if not isinstance(value, bool):
                    raise TypeError
                cleaned[name] = value
            else:
                cleaned[name] = kind(value)
        except (TypeError, ValueError):
            raise RunError(f"training option {name}: {value!r} is not a valid {kind.__name__}") from None
    for name in ("epochs", "batch_size", "max_length", "grad_accum", "progress_every"):
        if name in cleaned and cleaned[name] < 1:
            raise RunError(f"training option {name} must be at least 1, got {cleaned[name]}")
    if cleaned["lr"] <= 0:
        raise RunError(f"training option lr must be positive, got {cleaned['lr']}")
    if not 0 <= cleaned["eval_fraction"] < 1:
        raise RunError(f"training option eval_fraction must be in [0, 1), got {cleaned['eval_fraction']}")
    if cleaned.get("mode", "full") not in MODES:
        raise RunError(f"training option mode must be one of {', '.join(MODES)}, got {cleaned['mode']!r}")
    if cleaned.get("lora_r", 1) < 1:
        raise RunError(f"training option lora_r must be at least 1, got {cleaned['lora_r']}")
    return cleaned


def snapshot_axis(objective: str) -> str:
    """The consensus axis a new snapshot for this objective uses: harmlessness for the cost model."""
    return "harmlessness" if objective == TrainingRun.Objective.COST else "overall"


def freeze_snapshot(*, project: Project, objective: str, actor=None) -> DatasetSnapshot:
    """A new snapshot to train `objective` on; RunError when it cannot be made or holds no pair."""
    try:
        snapshot = create_snapshot(
            project=project,
            actor=actor,
            aggregation="majority",
            axis=snapshot_axis(objective),
            name=f"for {objective} training",
        )
    except ConsensusError as error:
        raise RunError(f"cannot freeze a snapshot: {error}") from error
    if not snapshot.pairs.exists():
        raise RunError(f"snapshot {snapshot.pk} has no consensus pairs to train on")
    return snapshot


def has_labels(project: Project) -> bool:
    """Whether any live comparison of `project` has an A/B vote or a gold label: without one, no snapshot
    of it can hold a consensus pair. One index probe each, so it is cheap enough for a request."""
    live = Q(comparison__deleted_at__isnull=True, comparison__item__deleted_at__isnull=True)
    return (
        Judgment.objects.filter(live, project=project, choice__in=("a", "b")).exists()
        or Gold.objects.filter(live, comparison__project=project).exclude(choice="tie").exists()
    )


def enqueue_run(run: TrainingRun) -> None:
    """Send the run's message on its queue once the current transaction commits."""
    run_id, queue = run.pk, run.queue
    # By name: tasks.py imports this module, not the other way round.
    transaction.on_commit(lambda: celery_app.send_task(TRAIN_TASK, args=[run_id], queue=queue))


def start_run(
    *,
    project: Project,
    objective: str,
    base_model: str,
    snapshot: DatasetSnapshot | None = None,
    config: dict,
    queue: str = "gpu",
    actor=None,
    trigger: str = "manual",
    enqueue: bool = True,
    freeze_in_worker: bool = False,
) -> TrainingRun:
    """Create a queued run (freezing a new snapshot when none is given) and send it to `queue` after commit.

    `enqueue=False` leaves the message unsent: `train_reward_model --foreground` then runs it in-process.
    `freeze_in_worker=True` (pages and the API: never a long snapshot inside a request) leaves the new snapshot
    to the run's worker, which freezes it first thing (`runner.freeze_for_run`); callers that already run in a
    worker or a command (the retrain check, `train_reward_model`) freeze it here.
    """
    if objective not in OBJECTIVES:
        raise RunError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if queue not in QUEUES:
        raise RunError(f"queue must be one of {', '.join(QUEUES)}, got {queue!r}")
    if not base_model or not str(base_model).strip():
        raise RunError("a base model (local path or hub name) is required")
    cleaned = clean_config(config)
    if project.task_kind == Project.TaskKind.RANKING and config.get("group_pairs") is None:
        # A ranking's implied pairs (one item) train in one batch, each response scored once (training.md).
        cleaned["group_pairs"] = not cleaned.get("share_prompt", False)
    if cleaned.get("group_pairs") and cleaned.get("share_prompt"):
        raise RunError("training options group_pairs and share_prompt cannot be combined: turn one off")
    with transaction.atomic():
        if snapshot is None and freeze_in_worker:
            # The run's worker freezes the snapshot when it starts; here only the cheap certainty that there
            # is nothing to freeze.
            if not has_labels(project):
                raise RunError(
                    f"project {project.slug} has no consensus pairs to train on (no A/B votes yet)"
                )
        elif snapshot is None:
            snapshot = freeze_snapshot(project=project, objective=objective, actor=actor)
        elif snapshot.project_id != project.pk:
            raise RunError(f"snapshot {snapshot.pk} belongs to another project")
        elif not snapshot.pairs.exists():
            raise RunError(f"snapshot {snapshot.pk} has no consensus pairs to train on")
        run = TrainingRun.objects.create(
            project=project,
            snapshot=snapshot,
            objective=objective,
            base_model=str(base_model),
            config=cleaned,
            queue=queue,
            max_attempts=settings.ARBITER_RUN_MAX_ATTEMPTS,
            trigger=trigger,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        # A random part too: a reset database must never point a new run at an old run's checkpoints.
        run.output_dir = str(settings.ARBITER_MODELS_DIR / "runs" / f"run-{run.pk}-{uuid.uuid4().hex[:8]}")
        run.save(update_fields=["output_dir"])
        AuditEvent.objects.create(
            actor=run.created_by,
            actor_name=getattr(actor, "username", "") or trigger,
            action="training.launch",
            project=project,
            target_type="training_run",
            target_id=str(run.pk),
            data={
                "objective": objective,
                "base_model": run.base_model,
                "snapshot": snapshot.pk if snapshot else None,  # None: frozen by the worker
                "snapshot_hash": snapshot.content_hash if snapshot else None,
                "queue": queue,
                "config": cleaned,
                "trigger": trigger,
                "foreground": not enqueue,
            },
        )
        if enqueue:
            enqueue_run(run)
    return run


def cancel_run(*, run: TrainingRun, actor=None) -> TrainingRun:
    """A queued run is cancelled at once; a running one is flagged and its runner stops the trainer."""
    with transaction.atomic():
        now = timezone.now()
        if not TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, cancel_requested=True, finished_at=now
        ):
            TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.RUNNING).update(
                cancel_requested=True
            )
        AuditEvent.objects.create(
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            actor_name=getattr(actor, "username", ""),
            action="training.cancel",
            project_id=run.project_id,
            target_type="training_run",
            target_id=str(run.pk),
        )
    run.refresh_from_db()
    return run


def sweep_runs(*, lease_seconds: float | None = None, queued_seconds: float | None = None) -> dict:
    """Re-queue runs whose runner stopped heart-beating, and re-send queued runs nobody picked up.

    Each change is a conditional UPDATE on the row as it was read, so two sweeps (or a sweep racing a runner)
    never both act on one run. A stale run out of attempts is failed; a stale run asked to cancel is cancelled.
    """
    lease = timedelta(
        seconds=lease_seconds if lease_seconds is not None else settings.ARBITER_RUN_LEASE_SECONDS
    )
    waited = timedelta(
        seconds=queued_seconds if queued_seconds is not None else settings.ARBITER_RUN_QUEUED_RESEND_SECONDS
    )
    now = timezone.now()
    counts = {"requeued": 0, "resent": 0, "failed": 0, "cancelled": 0}
    stale = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).filter(
        Q(heartbeat_at__lt=now - lease) | Q(heartbeat_at__isnull=True)
    )
    for run in stale:
        with transaction.atomic():
            same = TrainingRun.objects.filter(
                pk=run.pk,
                status=TrainingRun.Status.RUNNING,
                heartbeat_at=run.heartbeat_at,
                attempt=run.attempt,
            )
            if run.cancel_requested:
                if same.update(status=TrainingRun.Status.CANCELLED, finished_at=now, lease_owner=""):
                    counts["cancelled"] += 1
            elif run.attempt >= run.max_attempts:
                error = f"worker lost during attempt {run.attempt} of {run.max_attempts}"
                if same.update(
                    status=TrainingRun.Status.FAILED, finished_at=now, lease_owner="", error=error
                ):
                    counts["failed"] += 1
            elif same.update(
                status=TrainingRun.Status.QUEUED,
                lease_owner="",
                heartbeat_at=now,
                error=f"worker lost during attempt {run.attempt}; re-queued",
            ):
                counts["requeued"] += 1
                log.warning("run %s: heartbeat stopped, re-queued on %s", run.pk, run.queue)
                enqueue_run(run)
    forgotten = TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).filter(
        Q(heartbeat_at__lt=now - waited) | Q(heartbeat_at__isnull=True, created_at__lt=now - waited)
    )
    for run in forgotten:
        with transaction.atomic():
            if TrainingRun.objects.filter(
                pk=run.pk, status=TrainingRun.Status.QUEUED, heartbeat_at=run.heartbeat_at
            ).update(heartbeat_at=now):
                counts["resent"] += 1
                enqueue_run(run)
    return counts


def new_crowd_judgments(project: Project) -> int:
    """Crowd judgments (not source labels, not gold) given since the snapshot of the project's newest run."""
    latest = TrainingRun.objects.filter(project=project).select_related("snapshot").first()
    judgments = Judgment.objects.filter(project=project, is_source=False, is_gold=False)
    if latest is not None:
        judgments = judgments.filter(created_at__gt=latest.snapshot.created_at)
    return judgments.count()


def check_retrain(*, project: Project) -> TrainingRun | None:
    """Start a run when project.retrain_every new crowd judgments exist since the last run's snapshot.

    Idempotent: the project row is locked while deciding, a run already queued or running blocks a new one,
    and the new run's snapshot moves the count back to zero, so two checks never start two runs.
    The new run copies the objective, base model, config and queue of the project's newest run (or uses
    ARBITER_BASE_MODEL for a first Bradley–Terry run).
    """
    if not project.retrain_every:
        return None
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if not locked.retrain_every:
            return None
        active = TrainingRun.objects.filter(
            project=locked, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]
        )
        if active.exists():
            return None
        if new_crowd_judgments(locked) < locked.retrain_every:
            return None
        previous = TrainingRun.objects.filter(project=locked).first()
        if previous is not None:
            objective, base_model, config, queue = (
                previous.objective,
                previous.base_model,
                previous.config,
                previous.queue,
            )
        else:
            objective, base_model, config, queue = (
                TrainingRun.Objective.BT,
                settings.ARBITER_DEFAULT_BASE_MODEL,
                {},
                settings.ARBITER_TRAIN_QUEUE,
            )
        if not base_model:
            log.warning("project %s: retrain due but no base model (set ARBITER_BASE_MODEL)", locked.slug)
            return None
        return start_run(
            project=locked,
            objective=objective,
            base_model=base_model,
            config=config,
            queue=queue,
            trigger="retrain",
        )


def activate_model_version(*, version: ModelVersion, actor=None) -> ModelVersion:
    """Make `version` the project's active model of its kind (the previous one is deactivated) and score."""
    with transaction.atomic():
        ModelVersion.objects.filter(project_id=version.project_id, kind=version.kind, is_active=True).exclude(
            pk=version.pk
        ).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
        AuditEvent.objects.create(
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            actor_name=getattr(actor, "username", ""),
            action="model.activate",
            project_id=version.project_id,
            target_type="model_version",
            target_id=str(version.pk),
            data={"kind": version.kind},
        )
        version_id = version.pk
        transaction.on_commit(lambda: celery_app.send_task(SCORE_TASK, args=[version_id], queue="cpu"))
    version.refresh_from_db()
    return version
