"""python manage.py train_reward_model --project SLUG --objective bt|bt-margin|cost --base-model PATH …"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from annotate.worker import live_queues
from config.celery import ensure_broker_folders
from curation.models import DatasetSnapshot
from projects.models import Project
from rewardtrain import runner, services
from rewardtrain.models import TrainingRun
from rewardtrain.selectors import run_record

ENDED = {TrainingRun.Status.SUCCEEDED, TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED}


class Command(BaseCommand):
    help = "Train a reward (or cost) model on a frozen snapshot of a project's labels."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--objective", required=True, choices=services.OBJECTIVES)
        parser.add_argument(
            "--base-model", required=True, help="local path of a sequence-classification model"
        )
        parser.add_argument("--snapshot", type=int, help="snapshot id (default: freeze a new one)")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--max-length", type=int)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--checkpoint-every", type=int, help="optimizer steps between checkpoints")
        parser.add_argument("--queue", choices=services.QUEUES, default="gpu")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true", help="wait for a worker to finish the run")
        mode.add_argument("--foreground", action="store_true", help="train in this process, no broker")
        parser.add_argument(
            "--worker-grace", type=float, default=20.0, help="seconds --wait gives a worker to appear"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object: the run's record")

    def handle(self, *args, **opts) -> None:
        project = Project.objects.filter(slug=opts["project"], deleted_at__isnull=True).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        snapshot = None
        if opts["snapshot"] is not None:
            snapshot = DatasetSnapshot.objects.filter(pk=opts["snapshot"], project=project).first()
            if snapshot is None:
                raise CommandError(f"project {project.slug} has no snapshot {opts['snapshot']}")
        config = {
            key: opts[key]
            for key in ("epochs", "lr", "batch_size", "max_length", "seed", "checkpoint_every")
            if opts[key] is not None
        }
        if not opts["foreground"]:
            ensure_broker_folders()
        try:
            run = services.start_run(
                project=project,
                objective=opts["objective"],
                base_model=opts["base_model"],
                snapshot=snapshot,
                config=config,
                queue=opts["queue"],
                trigger="command",
                enqueue=not opts["foreground"],
            )
        except services.RunError as error:
            raise CommandError(str(error)) from error
        if not opts["json"]:
            self.stdout.write(
                f"run {run.pk}: snapshot {run.snapshot_id}, queue {run.queue}, output {run.output_dir}"
            )
        if opts["foreground"]:
            runner.run_in_foreground(run.pk)
        elif opts["wait"]:
            self.wait(run, opts["worker_grace"], quiet=opts["json"])
        run.refresh_from_db()
        if opts["json"]:
            self.stdout.write(json.dumps(run_record(run)))
        else:
            self.stdout.write(f"run {run.pk}: {run.status}")
        if (opts["foreground"] or opts["wait"]) and run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} ended {run.status}: {run.error[:500]}")

    def wait(self, run: TrainingRun, grace: float, quiet: bool) -> None:
        """Poll the run row until it ends; give up when no worker consumes its queue."""
        started = time.monotonic()
        last_step = None
        while True:
            run.refresh_from_db()
            if run.status in ENDED:
                return
            nobody = run.status == TrainingRun.Status.QUEUED and run.queue not in live_queues()
            if nobody and time.monotonic() - started >= grace:
                raise CommandError(
                    f"no worker consumes the {run.queue!r} queue (none has sent a heartbeat recently); "
                    f"run {run.pk} stays queued. Start one, e.g. "
                    f"`celery -A config worker -Q {run.queue}`, or rerun with --foreground."
                )
            step = (run.progress or {}).get("step")
            if not quiet and step is not None and step != last_step:
                last_step = step
                p = run.progress
                self.stderr.write(f"step {step}/{p.get('total_steps')} loss {p.get('loss', 0):.4f}")
            time.sleep(1.0)
