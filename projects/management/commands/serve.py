"""`make run`: migrate, seed the demo, then run the ASGI server (uvicorn, config/asgi.py: pages and JSON through
Django's WSGI handler under a2wsgi, websockets through Channels, one address) and an embedded Celery worker side by
side. docker-compose serves pages and JSON with gunicorn instead, behind a proxy (see config/server.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.celery import ensure_broker_folders
from config.server import uvicorn_argv


class Command(BaseCommand):
    help = "Run Arbiter: the ASGI web server (uvicorn, HTTP + websockets) and a Celery worker with beat."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-demo",
            action="store_true",
            help="Do not seed the demo projects and logins (never seeded with ARBITER_PRODUCTION=1).",
        )
        parser.add_argument("--web-workers", type=int, default=1)
        parser.add_argument(
            "--no-access-log",
            action="store_true",
            help="Do not log every request (as docker-compose's web service runs; see config/server.py).",
        )

    def handle(
        self, *args, host: str, port: int, no_demo: bool, web_workers: int, no_access_log: bool, **options
    ):
        call_command("migrate", interactive=False, verbosity=0)
        if settings.PRODUCTION:
            # Production never gets the demo's logins (their password is in the README) nor its data.
            self.stdout.write("Production mode (ARBITER_PRODUCTION=1): the demo is not seeded.")
        elif not no_demo:
            call_command("seed_demo")
        ensure_broker_folders()
        settings.ARBITER_MODELS_DIR.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        worker = subprocess.Popen(
            [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--beat",
                "-Q",
                "default,cpu,gpu",
                "--pool",
                "threads",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "-s",
                str(settings.DATA_DIR / "celerybeat-schedule"),
            ],
        )
        # The shipped uvicorn flags (config/server.py); the demo keeps the access log unless told otherwise.
        web = subprocess.Popen(
            uvicorn_argv(python, host=host, port=port, workers=web_workers, access_log=not no_access_log)
        )
        self.stdout.write(
            self.style.SUCCESS(f"Arbiter is starting on http://{host}:{port}/  (Ctrl+C stops it)")
        )
        children = [web, worker]

        def stop(*_: object) -> None:
            for child in children:
                if child.poll() is None:
                    child.terminate()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        finally:
            stop()
            for child in children:
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
        failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
        if failed:
            raise SystemExit(f"a child process exited with {failed[0].returncode}")
