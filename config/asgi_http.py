"""Django's HTTP handler for ASGI, with the middleware chain and the view run in one worker-thread call.

Django's own `ASGIHandler` loads the middleware in async mode. Every `MiddlewareMixin` middleware (all of
Django's) then runs each of its `process_request` / `process_view` / `process_response` through
`sync_to_async`, and a sync-only one (WhiteNoise) turns the chain back with `async_to_sync`: about twenty
hand-offs between the event loop and a worker thread per request, before the sync view runs in a thread
anyway. Measured on the workbench's JSON pair, that was a few milliseconds of CPU per request.

Every view of Arbiter is sync and every middleware in settings.MIDDLEWARE can run sync, so this handler loads
the chain in sync mode and calls it once through `sync_to_async(thread_sensitive=True)`: one hand-off. It runs
in the request's own thread, the thread where `request_started` and `request_finished` also run, so database
connections are taken from and given back to the pool exactly as with Django's handler.

Django's `__call__` gives each request a fresh `ThreadSensitiveContext`, which starts a new thread for the
request and, at the end, another one to join it. This handler lends each request a one-thread executor from a
small stock instead (`ThreadSensitiveContext(executor=…)`, asgiref's API for exactly this): the request still
has a thread to itself, and threads are reused as a threaded WSGI server reuses them — Django's
`request_finished` has closed the request's database connection (back to the pool) before the thread is lent
again. Everything else — reading the body, client disconnects, streaming and file responses, closing — is
Django's `ASGIHandler`, unchanged. An async view would still work: Django's sync path runs it with
`async_to_sync`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase


class SyncChainASGIHandler(ASGIHandler):
    """`ASGIHandler` whose middleware chain and view run synchronously in one worker-thread call."""

    # Idle one-thread executors kept for the next requests; more requests at once get new ones.
    max_idle_threads = 64

    def __init__(self) -> None:
        BaseHandler.__init__(self)  # not ASGIHandler.__init__: that loads the chain in async mode
        self.load_middleware(is_async=False)
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, "django-request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < self.max_idle_threads:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_http_application() -> SyncChainASGIHandler:
    """What `django.core.asgi.get_asgi_application()` does, with this handler."""
    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
