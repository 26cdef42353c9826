"""python manage.py erase_annotator --project SLUG (--annotator NAME | --user USERNAME)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotate.erasure import FROZEN_SNAPSHOTS, ErasureError, annotator_erase
from projects.models import Project


class Command(BaseCommand):
    help = "Remove one person's identity and free text from a project; their votes stay as an anonymous annotator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True)
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--annotator", help="The annotator's name within the project.")
        who.add_argument("--user", help="The login whose annotator identity to erase.")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        try:
            annotator = annotator_erase(
                project=project, annotator_name=options["annotator"], username=options["user"]
            )
        except ErasureError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Erased: annotator {annotator.pk} is now {annotator.name}.")
        self.stdout.write(f"Frozen snapshots: {FROZEN_SNAPSHOTS}.")
