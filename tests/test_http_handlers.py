"""HTTP through the documented interfaces: Django's WSGI handler (gunicorn, config/wsgi.py) and, for the ASGI
server (config/asgi.py), the same handler under a2wsgi. A file download is read a block at a time while it is
sent, never into memory whole; the request's database connection goes back when the request ends."""

from __future__ import annotations

import asyncio
import io
from wsgiref.util import setup_testing_defaults

import pytest
from django.http import FileResponse
from django.test import override_settings
from django.urls import path

pytestmark = pytest.mark.django_db

SIZE = 64 * FileResponse.block_size + 10
reads: list[int] = []  # for each read of the file: how many body parts had been sent before it
sent: list[int] = []  # the size of each body part sent


class CountingFile(io.BytesIO):
    def read(self, size=-1):
        reads.append(len(sent))
        return super().read(size)


files: list[CountingFile] = []


def file_download(request):
    files.append(CountingFile(bytes(range(256)) * (SIZE // 256) + bytes(range(SIZE % 256))))
    return FileResponse(files[-1], as_attachment=True, filename="export.jsonl")


urlpatterns = [path("file", file_download)]
EXPECTED = bytes(range(256)) * (SIZE // 256) + bytes(range(SIZE % 256))


@pytest.fixture(autouse=True)
def fresh():
    reads.clear()
    sent.clear()
    files.clear()
    with override_settings(ROOT_URLCONF="tests.test_http_handlers"):
        yield


def test_wsgi_download_is_read_a_block_at_a_time_as_the_server_takes_it():
    from config.wsgi import application

    environ: dict = {"PATH_INFO": "/file", "REQUEST_METHOD": "GET", "HTTP_HOST": "127.0.0.1"}
    setup_testing_defaults(environ)
    environ.pop("wsgi.file_wrapper", None)  # a BytesIO has no file descriptor: gunicorn iterates it too
    status: list[str] = []
    body = application(environ, lambda s, headers, exc_info=None: status.append(s))
    parts = iter(body)
    first = next(parts)
    sent.append(len(first))
    assert status == ["200 OK"]
    assert len(reads) <= 2 and files[0].tell() <= 2 * FileResponse.block_size  # not the whole file
    for part in parts:
        sent.append(len(part))
    body.close()
    assert b"".join([first, *[bytes(0)]]) and sum(sent) == SIZE
    assert files[0].closed


async def call_asgi(app, path: str) -> tuple[int, bytes]:
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
            sent.append(len(message.get("body", b"")))
            await asyncio.sleep(0)  # a client that takes its time
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    return out["status"], out["body"]


def test_asgi_download_is_read_while_sent_never_whole():
    from config.asgi import application

    status, body = asyncio.run(call_asgi(application, "/file"))
    assert (status, body) == (200, EXPECTED)
    # Each block is read at most a few sends ahead of the client (a2wsgi's bounded send queue): the server
    # holds a few blocks of the file, not the whole of it.
    assert len(reads) >= 64
    assert all(k - before <= 16 for k, before in enumerate(reads)), reads
    assert files[0].closed


def test_asgi_requests_give_their_database_connection_back(django_db_blocker):
    from config.asgi import application

    async def two():
        return [await call_asgi(application, "/healthz"), await call_asgi(application, "/healthz")]

    with override_settings(ROOT_URLCONF="config.urls"):
        results = asyncio.run(two())
    assert [status for status, _ in results] == [200, 200]
    assert all(b'"ok": true' in body for _, body in results)
