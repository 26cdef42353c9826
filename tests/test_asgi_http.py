"""config/asgi_http.py: each request's middleware chain, view and request signals run in one worker thread,
lent from a stock of reused threads."""

from __future__ import annotations

import asyncio
import io
import threading
import warnings

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.http import FileResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from config.asgi_http import SyncChainASGIHandler

pytestmark = pytest.mark.django_db

seen: dict[str, list[int]] = {}
# What Django warns when it reads a sync iterator into a list before sending any of it.
READ_WHOLE = "StreamingHttpResponse must consume synchronous iterators"


class RecordThread:
    """A sync-only middleware (like WhiteNoise): notes the thread it runs in."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        seen["middleware"].append(threading.get_ident())
        return self.get_response(request)


async def call(app, path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    done = asyncio.Event()
    out: dict = {"body": b""}

    async def receive():
        if messages:
            return messages.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        else:
            out["body"] += message.get("body", b"")
            seen.setdefault("sent", []).append(len(message.get("body", b"")))
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    return out["status"], out["body"]


@pytest.fixture
def threads_seen():
    """Which thread ran each request_started / request_finished (and the test's own probes)."""
    seen.clear()
    seen.update(middleware=[], started=[], finished=[], streamed=[], sent=[], sent_before_part=[])

    def on_started(**kwargs):
        seen["started"].append(threading.get_ident())

    def on_finished(**kwargs):
        seen["finished"].append(threading.get_ident())

    request_started.connect(on_started)
    request_finished.connect(on_finished)
    yield seen
    request_started.disconnect(on_started)
    request_finished.disconnect(on_finished)


def test_chain_view_and_request_signals_share_one_worker_thread(threads_seen):
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, "tests.test_asgi_http.RecordThread"]):
        app = SyncChainASGIHandler()

        async def two_requests():
            return [await call(app, "/healthz"), await call(app, "/healthz")]

        results = asyncio.run(two_requests())
    assert [status for status, _ in results] == [200, 200]
    assert all(b'"ok": true' in body for _, body in results)
    loop_thread = threading.get_ident()
    for i in range(2):
        # The database connection opened by the view is given back by request_finished in the same thread.
        assert seen["middleware"][i] == seen["started"][i] == seen["finished"][i] != loop_thread
    assert seen["middleware"][0] == seen["middleware"][1]  # the second request got the first one's thread
    (executor,) = app._idle

    def connection_closed() -> bool:
        from django.db import connection

        return connection.connection is None

    # The thread lent again holds no database connection: request_finished closed it (back to the pool).
    assert executor.submit(connection_closed).result()


def test_the_chain_is_loaded_synchronously():
    app = SyncChainASGIHandler()
    assert not asyncio.iscoroutinefunction(app._middleware_chain)


def test_one_thread_hand_off_per_request(monkeypatch):
    """Django's own ASGIHandler makes 15 here (one per middleware hook, the view, the two signals); this 1."""
    original = SyncToAsync.__call__
    hops: list[str] = []

    async def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    status, _ = asyncio.run(call(SyncChainASGIHandler(), "/healthz"))
    assert status == 200
    assert hops == ["SyncChainASGIHandler._respond"]


def streamed(request):
    def chunks():
        for part in (b"first,", b"second"):
            seen["streamed"].append(threading.get_ident())
            seen["sent_before_part"].append(len(seen["sent"]))
            yield part

    return StreamingHttpResponse(chunks())


def file_download(request, size: int):
    seen["file"] = CountingFile(bytes(range(256)) * (size // 256) + bytes(range(size % 256)))
    return FileResponse(seen["file"], as_attachment=True, filename="export.jsonl")


urlpatterns = [path("stream", streamed), path("file/<int:size>", file_download)]


def test_a_streaming_response_is_made_part_by_part_in_the_requests_thread_while_sent(threads_seen):
    with override_settings(ROOT_URLCONF="tests.test_asgi_http"), warnings.catch_warnings():
        warnings.filterwarnings("error", message=READ_WHOLE)
        status, body = asyncio.run(call(SyncChainASGIHandler(), "/stream"))
    assert (status, body) == (200, b"first,second")
    # Each part was made after the one before it was sent, not all of them before the first byte went out.
    assert seen["sent_before_part"] == [0, 1]
    assert len(seen["finished"]) == 1 and seen["finished"] == seen["started"]
    assert seen["streamed"] == seen["started"] * 2  # every part made in the request's thread


class CountingFile(io.BytesIO):
    """A file whose reads note how many body messages had been sent before each of them."""

    def read(self, size=-1):
        seen["sent_before_part"].append(len(seen["sent"]))
        return super().read(size)


def test_a_file_download_is_read_a_block_at_a_time_while_sent(threads_seen):
    """An export download: the file is read in blocks as they are sent, so the web worker holds one block of
    it, not the whole file, and closed after."""
    handler = SyncChainASGIHandler()
    size = 3 * handler.file_block_size + 10
    with override_settings(ROOT_URLCONF="tests.test_asgi_http"), warnings.catch_warnings():
        warnings.filterwarnings("error", message=READ_WHOLE)
        status, body = asyncio.run(call(handler, f"/file/{size}"))
    assert (status, body) == (200, bytes(range(256)) * (size // 256) + bytes(range(size % 256)))
    # Block k is read after k blocks were sent (the last read finds the end), each in messages of at most one
    # of the handler's chunks.
    per_block = handler.file_block_size // handler.chunk_size
    assert seen["sent_before_part"] == [0, per_block, 2 * per_block, 3 * per_block, 3 * per_block + 1]
    assert max(seen["sent"]) == handler.chunk_size
    assert seen["file"].closed
