"""Runs one training run: claim the row, write the pairs and spec, launch the trainer, tail its progress.

The run row is the truth (see runner.md). A Celery message only says "look at run N": `execute_run` claims the
row with one conditional UPDATE — queued, or running with a lease nobody renewed for ARBITER_RUN_LEASE_SECONDS
— so a duplicate delivery while another worker trains finds a fresh heartbeat of another owner and returns
"skipped". While the trainer runs, every heartbeat is another conditional UPDATE on (status running, lease
owner = us); when it matches nothing the lease was lost (a sweep re-queued the run) and the trainer is stopped,
so two trainers never write one run. The trainer (rewardtrain.trainer.training, a child process that dies with us)
resumes from the newest complete checkpoint in the run's output folder, which is how a re-queued run continues.
This module imports no torch: the worker stays light and the trainer owns the GPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from asgiref.sync import async_to_sync
from celery.exceptions import SoftTimeLimitExceeded
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from curation.models import SnapshotPair
from rewardtrain import registry
from rewardtrain.trainer import procs
from rewardtrain.trainer.calibration import HELD_OUT_SCORES

from .models import TrainingRun
from .services import RunError, enqueue_run, freeze_snapshot

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = re.compile(r"^step-(\d+)$")
HISTORY_POINTS = 600
POLL_SECONDS = 0.5
notify_failures = 0  # best-effort live updates that did not reach the channel layer (logged too)


def new_owner() -> str:
    """A lease owner name unique to this attempt: host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim_run(run_id: int, owner: str) -> TrainingRun | None:
    """Take the run if it is queued or its runner stopped heart-beating; None when someone else holds it."""
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=settings.ARBITER_RUN_LEASE_SECONDS)
    claimable = Q(status=TrainingRun.Status.QUEUED) | Q(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True), status=TrainingRun.Status.RUNNING
    )
    with transaction.atomic():
        taken = (
            TrainingRun.objects.filter(claimable, pk=run_id, cancel_requested=False)
            .filter(attempt__lt=F("max_attempts"))
            .update(
                status=TrainingRun.Status.RUNNING,
                attempt=F("attempt") + 1,
                lease_owner=owner,
                heartbeat_at=now,
                started_at=Coalesce(F("started_at"), Value(now)),
            )
        )
    return TrainingRun.objects.select_related("snapshot", "project", "created_by").get(pk=run_id) if taken else None


def freeze_for_run(run: TrainingRun):
    """Freeze the snapshot of a run started without one (the worker's first step) and record it on the run."""
    snapshot = freeze_snapshot(project=run.project, objective=run.objective, actor=run.created_by)
    TrainingRun.objects.filter(pk=run.pk, snapshot__isnull=True).update(snapshot=snapshot)
    log.info("run %s: froze snapshot %s (%s pairs)", run.pk, snapshot.pk, snapshot.pair_count)
    return snapshot


# --- inputs -------------------------------------------------------------------------------------------------


def pair_rows(run: TrainingRun) -> list[dict]:
    """The snapshot's pairs as trainer input (rewardtrain.trainer.training.Pair fields), in a fixed order.

    bt / bt-margin: chosen/rejected by consensus, margin = human margin. cost: chosen = the safer response,
    rejected = the other, with the per-response safe labels (None where unknown). item_key = the item id, so
    the trainer's split keeps every item on one side.
    """
    rows = []
    pairs = (
        SnapshotPair.objects.filter(snapshot_id=run.snapshot_id)
        .select_related("comparison__item", "comparison__response_a", "comparison__response_b")
        .order_by("comparison_id")
    )
    cost = run.objective == TrainingRun.Objective.COST
    for pair in pairs:
        comparison = pair.comparison
        first = (pair.safer or pair.chosen) if cost else pair.chosen
        a_first = first == "a"
        chosen, rejected = (
            (comparison.response_a, comparison.response_b)
            if a_first
            else (comparison.response_b, comparison.response_a)
        )
        chosen_safe, rejected_safe = (pair.a_safe, pair.b_safe) if a_first else (pair.b_safe, pair.a_safe)
        rows.append(
            {
                "item_key": str(comparison.item_id),
                "prompt": comparison.item.prompt,
                "chosen": chosen.text,
                "rejected": rejected.text,
                "margin": float(pair.margin or 0.0),
                "chosen_safe": chosen_safe if cost else None,
                "rejected_safe": rejected_safe if cost else None,
            }
        )
    return rows


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_spec(run: TrainingRun) -> Path:
    """Write pairs.jsonl and spec.json into the run's folder (the same bytes on every attempt)."""
    out = Path(run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = pair_rows(run)
    if not rows:
        raise ValueError(f"snapshot {run.snapshot_id} has no pairs")
    _write_atomic(out / "pairs.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    spec = {
        "config": {**run.config, "base_model": run.base_model, "objective": run.objective},
        "pairs_path": str(out / "pairs.jsonl"),
        "output_dir": str(out),
        "progress_path": str(out / "progress.jsonl"),
        "result_path": str(out / "result.json"),
        "stop_path": str(out / "STOP"),
    }
    _write_atomic(out / "spec.json", json.dumps(spec, indent=1))
    for leftover in ("result.json", "STOP", HELD_OUT_SCORES):  # from an earlier attempt
        (out / leftover).unlink(missing_ok=True)
    return out / "spec.json"


def visible_cuda_devices() -> int:
    """How many GPUs this worker may use, without importing torch: CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))


def newest_checkpoint(output_dir: Path) -> str:
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return ""
    steps = [(int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_DIR.match(p.name))]
    return str(max(steps)[1]) if steps else ""


# --- progress -----------------------------------------------------------------------------------------------


class ProgressTail:
    """Reads the complete JSON lines appended to the trainer's progress file since the last read."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.partial = b""

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        self.offset += len(chunk)
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        events = []
        for line in lines:
            if line.strip():
                try:
                    events.append(json.loads(line))
                except ValueError:
                    log.warning("unreadable progress line in %s: %r", self.path, line[:200])
        return events


def apply_event(progress: dict, event: dict, attempt: int) -> dict:
    """Fold one trainer event into run.progress (latest figures plus a capped [step, loss] history)."""
    kind = event.get("event")
    progress = dict(progress)
    progress["attempt"] = attempt
    if kind == "start":
        progress["world_size"] = event.get("world_size", 1)
        progress["phase"] = "starting"
    elif kind == "progress":
        for key in ("step", "total_steps", "epoch", "loss", "pairs_per_s", "tokens_per_s", "mfu", "eta_s", "lr"):
            if key in event:
                progress[key] = event[key]
        progress["phase"] = "training"
        step = event.get("step")
        history = [h for h in progress.get("history", []) if h[0] < step]  # a resumed run rewrites its tail
        history.append([step, event.get("loss")])
        if len(history) > HISTORY_POINTS:
            history = history[::2]
        progress["history"] = history
    elif kind == "done":
        progress["phase"] = "saving"
        progress["eta_s"] = 0
        progress["resumed_from_step"] = event.get("resumed_from_step")
    elif kind in ("cancelled", "failed"):
        progress["phase"] = kind
    progress["updated_at"] = timezone.now().isoformat()
    return progress


def notify(run_id: int) -> None:
    """Tell open run pages to refresh (best-effort: the row is the truth, pages also poll)."""
    global notify_failures
    try:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(f"run.{run_id}", {"type": "run.progress", "run_id": run_id})
    except Exception:  # a dead Redis must not stop training; the page falls back to polling
        notify_failures += 1
        log.warning("run %s: live update not sent (%d so far)", run_id, notify_failures, exc_info=True)


def heartbeat(run_id: int, owner: str, **fields) -> bool | None:
    """Renew the lease (and write fields); None when the lease is lost, else whether cancel was asked."""
    updated = TrainingRun.objects.filter(
        pk=run_id, status=TrainingRun.Status.RUNNING, lease_owner=owner
    ).update(heartbeat_at=timezone.now(), **fields)
    if not updated:
        return None
    return TrainingRun.objects.filter(pk=run_id).values_list("cancel_requested", flat=True).first()


# --- outcomes -----------------------------------------------------------------------------------------------


def finish(run_id: int, owner: str, status: str, **fields) -> bool:
    return bool(
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING, lease_owner=owner).update(
            status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields
        )
    )


def record_crash(run_id: int, owner: str, error: str, *, send: bool = True) -> str:
    """A failed attempt: re-queue while attempts remain (the next one resumes), else mark the run failed.

    `send=False` (a foreground run, no broker) leaves the re-queued run for the caller to claim again.
    """
    with transaction.atomic():
        run = TrainingRun.objects.filter(
            pk=run_id, lease_owner=owner, status=TrainingRun.Status.RUNNING
        ).first()
        if run is None:
            return "lost"
        if run.attempt >= run.max_attempts:
            finish(run_id, owner, TrainingRun.Status.FAILED, error=error, lease_owner="")
            return "failed"
        TrainingRun.objects.filter(pk=run_id, lease_owner=owner).update(
            status=TrainingRun.Status.QUEUED,
            lease_owner="",
            heartbeat_at=timezone.now(),
            error=f"attempt {run.attempt} failed: {error}",
        )
        if send:
            enqueue_run(run)
    return "requeued"


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _stop(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _stop_and_wait(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    _stop(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _stop(proc, signal.SIGKILL)
        proc.wait(10)


def trainer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def execute_run(run_id: int, *, owner: str | None = None, send_on_crash: bool = True) -> str:
    """Claim and train run `run_id` in a child process; returns what happened (for logs and tests):
    "skipped" (not ours to run), "succeeded", "cancelled", "requeued", "failed" or "lost" (lease taken away).
    """
    owner = owner or new_owner()
    run = claim_run(run_id, owner)
    if run is None:
        log.info("run %s: not claimable (another worker holds it, or it ended); skipping", run_id)
        return "skipped"
    if run.snapshot_id is None:
        try:
            run.snapshot = freeze_for_run(run)
        except RunError as error:
            finish(run_id, owner, TrainingRun.Status.FAILED, error=str(error), lease_owner="")
            return "failed"
    out = Path(run.output_dir)
    try:
        spec_path = write_spec(run)
    except Exception as error:
        log.exception("run %s: could not write the training inputs", run_id)
        finish(run_id, owner, TrainingRun.Status.FAILED, error=f"inputs: {error}", lease_owner="")
        return "failed"

    command = procs.training_command(spec_path, max(1, visible_cuda_devices()))
    log_path = out / f"trainer-attempt-{run.attempt}.log"
    tail = ProgressTail(out / "progress.jsonl")
    progress = dict(run.progress or {})
    stop_path = out / "STOP"
    with open(log_path, "wb") as log_file:
        proc = procs.launch(
            command,
            cwd=ROOT,
            env=trainer_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info("run %s: attempt %s, trainer pid %s: %s", run_id, run.attempt, proc.pid, " ".join(command))
    progress.update(trainer_pid=proc.pid, attempt=run.attempt, phase="starting")
    heartbeat(run_id, owner, progress=progress)
    cancel = False
    stop_deadline: float | None = None
    last_beat = last_written = time.monotonic()
    try:
        while True:
            exited = proc.poll() is not None
            events = tail.read()
            for event in events:
                progress = apply_event(progress, event, run.attempt)
            now = time.monotonic()
            if events or exited or now - last_beat >= settings.ARBITER_RUN_HEARTBEAT_SECONDS:
                try:
                    answer = heartbeat(
                        run_id, owner, progress=progress, last_checkpoint=newest_checkpoint(out)
                    )
                except DatabaseError:
                    # A database blip: keep training and retry; past the lease a sweep may have re-queued
                    # the run elsewhere, so stop rather than risk two trainers on one run.
                    log.warning("run %s: heartbeat failed", run_id, exc_info=True)
                    close_old_connections()  # drop a broken connection so the next beat reconnects
                    if now - last_written > settings.ARBITER_RUN_LEASE_SECONDS:
                        _stop_and_wait(proc)
                        return "lost"
                    last_beat = now
                    time.sleep(POLL_SECONDS)
                    continue
                last_beat = last_written = now
                if events:
                    notify(run_id)
                if answer is None:
                    log.warning("run %s: lease lost (re-queued elsewhere); stopping the trainer", run_id)
                    _stop_and_wait(proc)
                    return "lost"
                cancel = cancel or bool(answer)
            if exited:
                break
            if cancel and stop_deadline is None:
                stop_path.touch()  # the trainer stops between steps; killed if it takes too long
                stop_deadline = now + settings.ARBITER_RUN_CANCEL_GRACE_SECONDS
            elif stop_deadline is not None and now > stop_deadline:
                _stop(proc, signal.SIGKILL)
            time.sleep(POLL_SECONDS)
    except SoftTimeLimitExceeded:
        _stop_and_wait(proc)
        finish(run_id, owner, TrainingRun.Status.FAILED, error="time limit exceeded", lease_owner="")
        return "failed"
    except BaseException:
        _stop_and_wait(proc)  # the child must not outlive a runner that can no longer watch it
        raise

    result_path = out / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    if proc.returncode == 0 and result.get("status") == "completed":
        version = registry.complete_run(run_id=run_id, owner=owner, result=result, progress=progress)
        outcome = "succeeded" if version is not None else "lost"
    elif cancel:
        finish(run_id, owner, TrainingRun.Status.CANCELLED, lease_owner="", progress=progress)
        outcome = "cancelled"
    else:
        error = result.get("error") or f"trainer exited with status {proc.returncode}"
        log.error("run %s: attempt %s failed: %s\n%s", run_id, run.attempt, error, _log_tail(log_path))
        detail = f"{error}\n{_log_tail(log_path, 1500)}".strip()
        outcome = record_crash(run_id, owner, detail, send=send_on_crash)
    notify(run_id)
    return outcome


def run_in_foreground(run_id: int) -> str:
    """`train_reward_model --foreground`: the same runner, in this process, with no broker.

    A crashed attempt is retried here (resuming from its checkpoint) until the run's attempts are used up.
    """
    while True:
        outcome = execute_run(run_id, owner=f"foreground:{new_owner()}", send_on_crash=False)
        if outcome != "requeued":
            return outcome
