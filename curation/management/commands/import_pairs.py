"""python manage.py import_pairs FILE --project SLUG --format F [--source NAME] [--skip-invalid] …"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from curation.importers import FORMATS, ImportFailed, ImportReport, SetupError, import_file
from projects.models import Project


class Command(BaseCommand):
    help = "Import preference data (trl, hh, safe-rlhf, generic, raw) from JSONL, JSONL.gz or Parquet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--source", default=None, help="source annotator name (default: the format)")
        parser.add_argument("--skip-invalid", action="store_true", help="import good lines, report bad ones")
        parser.add_argument("--add-harm-categories", action="store_true")
        parser.add_argument(
            "--pairs", type=int, default=None, help="generic: pairs per line, chosen at random"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, file: str, project: str, fmt: str, **opts) -> None:
        proj = Project.objects.filter(slug=project, deleted_at__isnull=True).first()
        if proj is None:
            raise CommandError(f"no project {project!r}")
        try:
            report = import_file(
                file,
                project=proj,
                fmt=fmt,
                source=opts["source"],
                skip_invalid=opts["skip_invalid"],
                add_harm_categories=opts["add_harm_categories"],
                generic_pairs=opts["pairs"],
                seed=opts["seed"],
            )
        except ImportFailed as e:
            self._print(file, e.report, opts["json"])
            raise CommandError(
                f"{e.report.bad_lines} bad line(s) in {file}; nothing was imported "
                "(fix them, or pass --skip-invalid to import the good lines)"
            ) from None
        except (SetupError, ValueError, OSError) as e:
            raise CommandError(f"{file}: {e}") from None
        except DatabaseError as e:
            raise CommandError(
                f"{file}: the database refused the import, nothing was committed ({e}); "
                "if another process was writing the same rows at the same time, run it again"
            ) from None
        self._print(file, report, opts["json"])

    def _print(self, file: str, report: ImportReport, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        for err in report.errors:
            where = f"{err.field}: " if err.field else ""
            self.stderr.write(f"{file}:{err.line}: {where}{err.message}")
        if report.bad_lines > len(report.errors):
            self.stderr.write(f"… and {report.bad_lines - len(report.errors)} more bad line(s) not listed")
        state = "committed" if report.committed else "NOT committed"
        self.stdout.write(
            f"{report.format}: {report.total_lines} lines, {report.ok_lines} good, {report.bad_lines} bad"
            f"{' (skipped)' if report.committed and report.bad_lines else ''}; {state}.\n"
            f"created: {report.items_created} items, {report.responses_created} responses, "
            f"{report.comparisons_created} comparisons, {report.judgments_created} judgments"
            f"{f', {report.revisions_created} revisions' if report.revisions_created else ''}; "
            f"{report.duplicates} already present."
        )
        for note in report.notes:
            self.stdout.write(f"note: {note}")
