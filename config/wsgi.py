"""WSGI entry point: Django's own handler, for pages and JSON (served by gunicorn or, inside config/asgi.py, by
a2wsgi under uvicorn)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
