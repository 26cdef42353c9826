"""python manage.py snapshot --project SLUG [options]: freeze the consensus pairs; prints the snapshot id."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from curation.snapshots import create_snapshot, snapshot_as_dict
from insights.consensus import AGGREGATIONS, AXES, ConsensusError
from projects.models import Project


def add_snapshot_options(parser: CommandParser) -> None:
    parser.add_argument("--aggregate", choices=AGGREGATIONS, default="majority")
    parser.add_argument("--axis", choices=AXES, default="overall")
    parser.add_argument("--exclude", default="", help="Comma-separated: gold, imported, flagged.")
    parser.add_argument("--min-agreement", type=float, default=None)
    parser.add_argument("--name", default="")


def get_project(slug: str, *, include_deleted: bool = False) -> Project:
    qs = Project.objects.all() if include_deleted else Project.objects.filter(deleted_at__isnull=True)
    project = qs.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"no project with slug {slug!r}")
    return project


def snapshot_from_options(project: Project, options: dict):
    try:
        return create_snapshot(
            project=project,
            aggregation=options["aggregate"],
            axis=options["axis"],
            exclude=options["exclude"],
            min_agreement=options["min_agreement"],
            name=options["name"],
        )
    except ConsensusError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = "Freeze a project's consensus pairs into a dataset snapshot and print its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        add_snapshot_options(parser)
        parser.add_argument("--json", action="store_true", help="Print the snapshot as JSON.")

    def handle(self, *args, **options) -> None:
        snapshot = snapshot_from_options(get_project(options["project"]), options)
        if options["json"]:
            self.stdout.write(json.dumps(snapshot_as_dict(snapshot), indent=2))
        else:
            self.stdout.write(str(snapshot.pk))
