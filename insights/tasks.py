"""Celery tasks of the insights app (Celery's autodiscovery imports each app's `tasks`)."""

