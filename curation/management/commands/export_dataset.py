"""python manage.py export_dataset --project SLUG --format F --out PATH [--snapshot ID] [options]."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from curation.exporters import FORMATS, STYLES, ExportError, export_snapshot
from curation.management.commands.snapshot import (
    add_snapshot_options,
    get_project,
    snapshot_from_options,
)
from curation.models import DatasetSnapshot


class Command(BaseCommand):
    help = (
        "Export a dataset snapshot (an existing one, or a new one from the snapshot options) with its card."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--out", required=True)
        parser.add_argument("--snapshot", type=int, default=None, help="An existing snapshot of the project.")
        parser.add_argument("--style", choices=STYLES, default="conversational", help="trl only.")
        parser.add_argument("--margin", action="store_true", help="trl: add the human margin.")
        parser.add_argument("--gzip", action="store_true")
        parser.add_argument("--parquet", action="store_true")
        parser.add_argument(
            "--with-names",
            action="store_true",
            help="raw: write annotator names (recorded in the audit log).",
        )
        parser.add_argument(
            "--reward-fit",
            type=int,
            default=None,
            help="trl: add a reward_terms column from this rubric reward fit of the snapshot.",
        )
        add_snapshot_options(parser)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options) -> None:
        # A soft-deleted project's existing snapshots still export; new snapshots need a live project.
        project = get_project(options["project"], include_deleted=options["snapshot"] is not None)
        if options["snapshot"] is not None:
            snapshot = DatasetSnapshot.objects.filter(pk=options["snapshot"], project=project).first()
            if snapshot is None:
                raise CommandError(f"project {project.slug!r} has no snapshot {options['snapshot']}")
        else:
            snapshot = snapshot_from_options(project, options)
        try:
            result = export_snapshot(
                snapshot,
                options["out"],
                fmt=options["format"],
                style=options["style"],
                margin=options["margin"],
                compress=options["gzip"],
                parquet=options["parquet"],
                with_names=options["with_names"],
                reward_fit=options["reward_fit"],
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        summary = {
            "snapshot": snapshot.pk,
            "content_hash": snapshot.content_hash,
            "rows": result.rows,
            "pairs": result.pairs,
            "path": str(result.path),
            "card": str(result.card_path),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self.stdout.write(
                f"{result.rows} rows of snapshot {snapshot.pk} ({snapshot.content_hash[:12]}) → {result.path}; "
                f"card {result.card_path}"
            )
