"""What a request says when a background job cannot be queued.

A job row is committed first and its Celery message sent after; when the broker cannot take the message, the
app that owns the job marks the row failed (so nothing waits "queued" for ever) and raises `QueueUnavailable`,
which config.overload turns into a 503: JSON for the API, a short page for the browser.
"""

from __future__ import annotations


class QueueUnavailable(Exception):
    """The job queue (the Celery broker) did not take a job's message; the job was marked failed."""

    retry_after = 30
