"""Celery tasks of the insights app (Celery's autodiscovery imports each app's `tasks`)."""

from insights.dashboard import recompute_dashboard_task  # noqa: F401 - defined beside the figures it recomputes
