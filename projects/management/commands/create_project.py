"""`manage.py create_project SLUG NAME [--set name=value …] [--from settings.json] [--json]`: a new project,
validated as the page validates it, audited as `project.created`."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from projects.management import project_args
from projects.services import project_create
from projects.settings_form import SETTINGS, NewProjectForm


class Command(BaseCommand):
    help = "Create a project with its settings (the same checks as the New project page)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("name")
        project_args.add_arguments(parser)

    def handle(self, *args, **options):
        values = project_args.values_from(options, set(SETTINGS) - {"name"})
        values |= {"slug": options["slug"], "name": options["name"]}
        data = project_args.validated(NewProjectForm, values)
        project = project_create(data=data, actor=project_args.actor_from(options), actor_name="manage.py")
        if options["json"]:
            project_args.output(self, project, options)
        else:
            self.stdout.write(f"created project {project.slug} (id {project.pk})")
