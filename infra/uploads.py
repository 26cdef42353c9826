"""Large uploads: streamed to disk, refused over settings.ARBITER_MAX_UPLOAD_BYTES before they are buffered.

Two guards, because Django's ASGI handler reads the whole request body into a spooled temporary file before
any view runs: `BodyLimitMiddleware` (ASGI, wraps the Django app in config/asgi.py) answers 413 from the
Content-Length header, or as soon as the streamed body passes the limit; `StreamToDiskUploadHandler` (set by
the upload view) does the same inside Django and writes the file part straight to ARBITER_IMPORTS_DIR
instead of memory or a temp file.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers


class UploadTooLarge(Exception):  # noqa: N818 - reads better at the raise site
    def __init__(self, limit: int):
        super().__init__(f"The upload is larger than the limit of {human_size(limit)}.")
        self.limit = limit


def human_size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def uploads_dir() -> Path:
    path = Path(settings.ARBITER_IMPORTS_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


class DiskUpload(UploadedFile):
    """A file part already written to `path`; the view moves it where it belongs."""

    def __init__(self, path: Path, name: str, size: int, content_type: str | None):
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.path = path

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class StreamToDiskUploadHandler(FileUploadHandler):
    chunk_size = 256 * 1024

    def __init__(self, request=None, limit: int | None = None):
        super().__init__(request)
        self.limit = settings.ARBITER_MAX_UPLOAD_BYTES if limit is None else limit
        self.seen = 0
        self.path: Path | None = None
        self._fh = None

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):  # noqa: N803
        if content_length and content_length > self.limit:
            raise UploadTooLarge(self.limit)
        return None  # go on with the normal multipart parsing

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.path = uploads_dir() / f"upload-{uuid.uuid4().hex}.part"
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in file_complete / upload_interrupted
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.seen += len(raw_data)
        if self.seen > self.limit:
            self.upload_interrupted()
            raise UploadTooLarge(self.limit)
        self._fh.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> DiskUpload:
        self._fh.close()
        return DiskUpload(self.path, self.file_name, file_size, self.content_type)

    def upload_interrupted(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """ASGI: refuse request bodies over ARBITER_MAX_UPLOAD_BYTES before Django buffers them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = settings.ARBITER_MAX_UPLOAD_BYTES
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            return await _refuse(send, limit)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        try:
            return await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            return await _refuse(send, limit)


async def _refuse(send, limit: int) -> None:
    body = f"413 Request Entity Too Large: uploads are limited to {human_size(limit)}.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
