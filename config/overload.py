"""Overload and outage answers: 503 with Retry-After, never a 500, when the server cannot serve a request now.

Two cases, each where it is cheapest to catch:

- Too many requests in flight in this worker (`InflightLimitMiddleware`, ASGI, outermost): Django runs each
  concurrent request's sync code in its own thread, so without a bound a burst makes hundreds of threads that
  all queue on the PostgreSQL pool and time out together. Over `ARBITER_MAX_INFLIGHT` the request is answered
  at once, before Django sees it; a client retries after Retry-After.
- The database cannot be reached or gives no connection in time (`DatabaseUnavailableMiddleware`, Django):
  psycopg_pool's PoolTimeout and a refused or dropped connection both reach the view as Django's
  OperationalError / InterfaceError. They are transient by nature: the JSON endpoints answer 503 with
  Retry-After (clients retry with the same submission id, which is idempotent), pages a short HTML page.

No retry happens here: a submit that fails is retried by its client, so a judgment is never written twice.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin

from infra.jobs import QueueUnavailable

log = logging.getLogger(__name__)

BUSY_RETRY_AFTER = 1
# A PostgreSQL restart or failover takes a few seconds; the pool reconnects in the background meanwhile.
DATABASE_RETRY_AFTER = 2


def wants_json(path: str, content_type: str, accept: str) -> bool:
    """JSON for the API and for scripts posting JSON (the workbench's draft save); HTML for pages."""
    return (
        path.startswith("/api/")
        or content_type.startswith("application/json")
        or ("application/json" in accept and "text/html" not in accept)
    )


def unavailable_response(request: HttpRequest, message: str, retry_after: int) -> HttpResponse:
    if wants_json(request.path, request.content_type or "", request.headers.get("Accept", "")):
        response: HttpResponse = JsonResponse({"error": message, "retry_after": retry_after}, status=503)
    else:
        # Rendered without the request: the context processors would read the session from the database.
        html = render_to_string("503.html", {"message": message, "retry_after": retry_after})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """A view that cannot reach the database (pool timeout, refused or dropped connection) answers 503; so does
    one whose background job the broker would not take (`infra.jobs.QueueUnavailable`)."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, QueueUnavailable):  # the broker, not the database: the job row says failed
            log.warning("job queue unavailable for %s %s: %s", request.method, request.path, exception)
            return unavailable_response(request, str(exception), exception.retry_after)
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        return unavailable_response(
            request,
            "The database is busy or briefly unavailable; nothing was saved. Retry shortly.",
            DATABASE_RETRY_AFTER,
        )


class InflightLimitMiddleware:
    """ASGI middleware: at most `limit` HTTP requests in flight in this process; over it, 503 at once.

    The counter lives on the event loop (one per worker process), so it needs no lock.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit
        self.inflight = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            await self._busy(scope, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _busy(self, scope, send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        message = f"The server is busy; retry in {BUSY_RETRY_AFTER} s."
        if wants_json(scope.get("path", ""), headers.get("content-type", ""), headers.get("accept", "")):
            body = orjson.dumps({"error": message, "retry_after": BUSY_RETRY_AFTER})
            content_type = b"application/json"
        else:
            body = message.encode()
            content_type = b"text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(BUSY_RETRY_AFTER).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class LoginGateMiddleware:
    """ASGI middleware: at most `limit` password logins (POST to one of `paths`) and at most `page_limit` other
    requests for those paths (the login form) inside Django at once per process; the rest wait here, on the event
    loop, holding no thread and no database connection. A limit of 0 lets its requests straight through.

    HTTP requests run on a fixed pool of threads (config/asgi.py), and a login spends hundreds of milliseconds of
    CPU hashing its password (infra/auth.py). Without this gate a login storm fills every thread with logins waiting
    their turn to hash, and the annotators' claims and submits queue behind them for as long as the storm lasts.
    The forms have their own gate, so that a burst of them (everyone opening the page at 9:00) neither takes every
    thread of the pool (a claim would wait behind a hundred of them) nor waits behind the hashing.
    """

    def __init__(self, app, limit: int, paths: tuple[str, ...], page_limit: int = 0):
        self.app = app
        self.limits = {"POST": limit, "page": page_limit}
        self.paths = frozenset(paths)
        self.gates: dict[str, asyncio.Semaphore] = {}  # made on first use, on the worker's event loop

    async def __call__(self, scope, receive, send) -> None:
        kind = "POST" if scope.get("method") == "POST" else "page"
        if scope["type"] != "http" or self.limits[kind] <= 0 or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        gate = self.gates.get(kind)
        if gate is None:
            gate = self.gates[kind] = asyncio.Semaphore(self.limits[kind])
        async with gate:
            await self.app(scope, receive, send)
