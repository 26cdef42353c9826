"""python manage.py sweep_runs: re-queue runs whose heartbeat stopped (what the beat task does)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from rewardtrain import services


class Command(BaseCommand):
    help = "Re-queue training runs whose worker stopped heart-beating, and re-send forgotten queued runs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lease-seconds", type=float, help="heartbeat age that counts as stopped")
        parser.add_argument("--queued-seconds", type=float, help="age of a queued run that is re-sent")

    def handle(self, *args, **opts) -> None:
        counts = services.sweep_runs(
            lease_seconds=opts["lease_seconds"], queued_seconds=opts["queued_seconds"]
        )
        self.stdout.write(json.dumps(counts))
