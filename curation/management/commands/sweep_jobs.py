"""python manage.py sweep_jobs: re-queue or fail import/export/snapshot jobs whose heartbeat stopped (what the
beat task does)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from curation import job_leases


class Command(BaseCommand):
    help = "Re-queue or fail import, export and snapshot jobs whose worker stopped heart-beating; re-send lost ones."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--lease-seconds", type=float, help="heartbeat age that counts as stopped")
        parser.add_argument("--queued-seconds", type=float, help="age of a queued job that is re-sent")

    def handle(self, *args, **opts) -> None:
        counts = job_leases.sweep_jobs(
            lease_seconds=opts["lease_seconds"], queued_seconds=opts["queued_seconds"]
        )
        self.stdout.write(json.dumps(counts))
