"""python manage.py eval_set_add --project SLUG --name NAME --format trl|hh|safe-rlhf|raw|rewardbench --file F"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from projects.models import Project
from rewardtrain.eval_reading import SET_FORMATS
from rewardtrain.eval_sets import SetError, create_set


class Command(BaseCommand):
    help = "Add a frozen evaluation set (a labelled preference file, optional subset per row) to a project."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--format", required=True, choices=SET_FORMATS)
        parser.add_argument("--file", required=True, help=".jsonl, .jsonl.gz or .parquet")

    def handle(self, *args, **opts) -> None:
        project = Project.objects.filter(slug=opts["project"], deleted_at__isnull=True).first()
        if project is None:
            raise CommandError(f"no project {opts['project']!r}")
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            eval_set = create_set(
                project=project, name=opts["name"], fmt=opts["format"], source=path, filename=path.name
            )
        except SetError as error:
            raise CommandError(str(error)) from error
        subsets = ", ".join(f"{k or '(none)'} {v}" for k, v in eval_set.subsets.items())
        self.stdout.write(
            f"evaluation set {eval_set.pk} {eval_set.name!r}: {eval_set.rows} pairs ({subsets}), "
            f"sha256 {eval_set.sha256}"
        )
