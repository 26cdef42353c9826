from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from curation.demo import DemoRefused, seed_demo


class Command(BaseCommand):
    help = "Create the demo projects (real HH-RLHF pairs + benign prompts), demo logins and simulated votes."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=os.environ.get("ARBITER_DEMO_PASSWORD", "arbiter-demo"))
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, password: str, quiet: bool, **options):
        try:
            logins = seed_demo(password=password)
        except DemoRefused as e:
            raise CommandError(str(e)) from None
        if not quiet:
            self.stdout.write("Demo logins (username / password):")
            for login in logins:
                self.stdout.write(f"  {login.username:<11} / {login.password}   {login.role}")
