from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rubrics.interchange import dump_rubric
from rubrics.models import Rubric, RubricVersion


class Command(BaseCommand):
    help = "Write one version of a rubric as JSON or YAML (the latest version unless --version)."

    def add_arguments(self, parser):
        parser.add_argument("rubric", type=int, help="Rubric id")
        parser.add_argument("--number", dest="number", type=int, help="Version number")
        parser.add_argument("--format", choices=["json", "yaml"], default="json")
        parser.add_argument("--out", help="Write here instead of standard output")

    def handle(self, *args, **options):
        rubric = Rubric.objects.filter(pk=options["rubric"]).first()
        if rubric is None:
            raise CommandError(f"No rubric with id {options['rubric']}")
        versions = RubricVersion.objects.filter(rubric=rubric)
        if options["number"] is not None:
            versions = versions.filter(number=options["number"])
        version = versions.order_by("-number").first()
        if version is None:
            raise CommandError(f"Rubric {rubric.pk} has no version {options['number']}")
        text = dump_rubric(version, options["format"])
        if options["out"]:
            Path(options["out"]).write_text(text, encoding="utf-8")
        else:
            self.stdout.write(text, ending="")
