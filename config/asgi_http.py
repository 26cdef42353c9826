"""Django's HTTP handler for ASGI, with the middleware chain and the view run in one worker-thread call.

Django's own `ASGIHandler` loads the middleware in async mode. Every `MiddlewareMixin` middleware (all of
Django's) then runs each of its `process_request` / `process_view` / `process_response` through
`sync_to_async`, and a sync-only one (WhiteNoise) turns the chain back with `async_to_sync`: about twenty
hand-offs between the event loop and a worker thread per request, before the sync view runs in a thread
anyway. Measured on the workbench's JSON pair, that was a few milliseconds of CPU per request.

Every view of Arbiter is sync and every middleware in settings.MIDDLEWARE can run sync, so this handler loads
the chain in sync mode and calls it once through `sync_to_async(thread_sensitive=True)`: one hand-off. It runs
in the request's own thread (Django's `__call__` opens a `ThreadSensitiveContext` per request), the thread
where `request_started` and `request_finished` also run, so database connections are taken from and given
back to the pool exactly as with Django's handler. Everything else — reading the body, client disconnects,
streaming and file responses, closing — is Django's `ASGIHandler`, unchanged. An async view would still work:
Django's sync path runs it with `async_to_sync`.
"""

from __future__ import annotations

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponseBase


class SyncChainASGIHandler(ASGIHandler):
    """`ASGIHandler` whose middleware chain and view run synchronously in one worker-thread call."""

    def __init__(self) -> None:
        BaseHandler.__init__(self)  # not ASGIHandler.__init__: that loads the chain in async mode
        self.load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_http_application() -> SyncChainASGIHandler:
    """What `django.core.asgi.get_asgi_application()` does, with this handler."""
    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
