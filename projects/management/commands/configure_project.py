"""`manage.py configure_project SLUG [--set name=value …] [--from settings.json] [--json]`: change a project's
settings, validated as the settings page validates them, audited as `project.configured`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from projects.management import project_args
from projects.models import Project
from projects.services import project_configure
from projects.settings_form import SETTINGS, ProjectSettingsForm


class Command(BaseCommand):
    help = "Change a project's settings (the same checks as its Settings page); without changes, print them."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        project_args.add_arguments(parser)

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["slug"], deleted_at__isnull=True).first()
        if project is None:
            raise CommandError(f"no project with the slug {options['slug']!r}")
        values = project_args.values_from(options, set(SETTINGS))
        changes = {}
        if values:
            data = project_args.validated(ProjectSettingsForm, values, instance=project)
            project.refresh_from_db()  # the form's validation set its values on the instance
            actor = project_args.actor_from(options)
            changes = project_configure(project=project, data=data, actor=actor, actor_name="manage.py")
        if options["json"]:
            project_args.output(self, project, options, {"changed": sorted(changes)})
        else:
            self.stdout.write(
                f"{project.slug}: changed {', '.join(sorted(changes))}"
                if changes
                else f"{project.slug}: no change"
            )
