from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from rubrics.interchange import RubricFileError, import_rubric


class Command(BaseCommand):
    help = (
        "Create a rubric from a JSON or YAML file (format from the extension unless --format); prints its id."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--format", choices=["json", "yaml"])
        parser.add_argument("--publish", action="store_true", help="Publish version 1 at once")
        parser.add_argument("--user", help="Username recorded as the author")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        fmt = options["format"] or ("yaml" if path.suffix.lower() in (".yaml", ".yml") else "json")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}")
        try:
            rubric = import_rubric(
                path.read_text(encoding="utf-8"), fmt, user=user, publish=options["publish"]
            )
        except RubricFileError as exc:
            raise CommandError(f"{path}: " + "; ".join(exc.errors))
        self.stdout.write(str(rubric.pk))
