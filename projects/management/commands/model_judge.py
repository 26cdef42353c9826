"""`manage.py model_judge SLUG USERNAME [--human]`: mark a member's annotator as a model judge (or a human again),
as the people page does, audited as `membership.annotator_kind`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from projects.models import Membership
from projects.people import PeopleError, membership_set_model_judge


class Command(BaseCommand):
    help = (
        "Mark a project member as a model judge (its judgments never count toward k and stay out of the human "
        "agreement figures) or, with --human, as a human again."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("--human", action="store_true", help="Mark them human again.")

    def handle(self, *args, **options):
        membership = (
            Membership.objects.select_related("project", "user")
            .filter(
                project__slug=options["slug"],
                project__deleted_at__isnull=True,
                user__username=options["username"],
            )
            .first()
        )
        if membership is None:
            raise CommandError(
                f"{options['username']!r} is not a member of a project with the slug {options['slug']!r}"
            )
        try:
            annotator = membership_set_model_judge(
                membership=membership, model_judge=not options["human"], actor=None
            )
        except PeopleError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(
            f"{membership.project.slug}: {annotator.name} is {annotator.get_kind_display().lower()}"
        )
