"""Django's HTTP handler for ASGI, with the whole request in one call on a reused worker thread.

Django's own `ASGIHandler` loads the middleware in async mode. Every `MiddlewareMixin` middleware (all of
Django's) then runs each of its `process_request` / `process_view` / `process_response` through
`sync_to_async`, and a sync-only one (WhiteNoise) turns the chain back with `async_to_sync`: fifteen
hand-offs between the event loop and a worker thread for one request here, before the sync view runs in a
thread anyway; `request_started` and closing the response (`request_finished`) are two more. Each hand-off is
two thread switches and a copy of every context variable both ways. On the workbench's JSON pair that was
several times the CPU of Django's own work.

Every view of Arbiter is sync and every middleware in settings.MIDDLEWARE can run sync, so this handler loads
the chain in sync mode and runs `request_started`, the chain with the view, and — when the body is already in
memory, as for every page and JSON answer — closing the response in one `sync_to_async` call; the body is then
sent from the event loop. A streaming response (file downloads) is read a part at a time in that thread while
it is sent, not into memory first as Django's handler does with a sync iterator, and closed after it is sent, in
the same thread. `request_finished` closes the request's database connection (back to the pool) in the thread that
opened it, as with Django's handler.

Each request gets a thread of its own, lent from a small stock of one-thread executors
(`ThreadSensitiveContext(executor=…)`, asgiref's API for this) rather than a new thread started, and another
one to join it, per request; threads are reused as a threaded WSGI server reuses them. Reading the body,
building the request and sending the response are Django's `ASGIHandler` code. What differs from it: a client
that disconnects before its answer is ready is not noticed until the answer is sent (a sync view cannot be
interrupted either way), and an async view, which Arbiter does not have, would run through `async_to_sync`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix


class SyncChainASGIHandler(ASGIHandler):
    """`ASGIHandler` whose middleware chain and view run synchronously in one worker-thread call."""

    # Idle one-thread executors kept for the next requests; more requests at once get new ones.
    max_idle_threads = 64
    # A file download is read this much at a time in the request's thread (sent in `chunk_size` messages): one
    # hand-off a block. A 400 MiB export through uvicorn: 1.1-1.2 s with 64 KiB blocks, 0.44-0.54 s with 1 MiB.
    file_block_size = 2**20

    def __init__(self) -> None:
        BaseHandler.__init__(self)  # not ASGIHandler.__init__: that loads the chain in async mode
        self.load_middleware(is_async=False)
        self._idle: list[ThreadPoolExecutor] = []
        # Made once: building the wrapper (its checks of the function, update_wrapper) cost as much per request
        # as the hand-off's bookkeeping. It holds no per-call state.
        self._respond_in_thread = sync_to_async(self._respond, thread_sensitive=True)

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

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            response = await self._respond_in_thread(scope, body_file)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while we sent: nothing to do, as in Django's handler
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def _respond(self, scope, body_file) -> HttpResponseBase:
        """In the request's thread: request_started, the request through the chain and view, and closing an
        in-memory response (request_finished gives the database connection back)."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.file_block_size
        if not response.streaming:
            response.close()
        elif not response.is_async:
            response.streaming_content = _pulled_in_this_thread(response.streaming_content)
        return response


_END = object()


async def _pulled_in_this_thread(parts):
    """A sync iterator of a streaming response as an async one whose parts are made, one at a time, in the
    request's thread (the `ThreadSensitiveContext` of `__call__` is current while the response is sent).

    Django's `StreamingHttpResponse.__aiter__` would otherwise read a sync iterator to its end into a list
    before the first byte is sent (with a warning): a whole export file in the web worker's memory."""
    pull = sync_to_async(next, thread_sensitive=True)
    while (part := await pull(parts, _END)) is not _END:
        yield part


def get_http_application() -> SyncChainASGIHandler:
    """What `django.core.asgi.get_asgi_application()` does, with this handler."""
    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
