"""Streamed readers: JSONL, gzipped JSONL and Parquet, one record at a time with its line (or row) number.

The container is recognised by its first bytes (gzip magic, Parquet's `PAR1`), not by its name, so an
uploaded file keeps working whatever it was called. Memory stays flat: JSONL is read line by line, Parquet
in record batches.

Limits (settings, each from the environment; see `ReadLimits`): the bytes a gzip may decompress to, and the
bytes of one line. A line over its limit is a bad line, named by number, and is skipped block by block without
being held; a file that decompresses past its limit stops the import (`ImportLimitExceeded`, nothing committed).
Runs of blank lines are stepped over in C, so a gzip of nothing but newlines costs the time of decompressing it.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from infra.uploads import human_size

PARQUET_BATCH_ROWS = 4096
# Reads of a mebibyte, not Python's default 8 KiB (about ten lines): every read releases the GIL, and the
# reader thread must then wait for the writing thread to hand it back (up to the 5 ms switch interval).
READ_BUFFER = 1 << 20


class InvalidRecord:
    """A line that is not a JSON object (or could not be read): reported, never parsed further."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


@dataclass(frozen=True)
class ReadLimits:
    """How much one import may read: `max_decompressed` bytes out of a gzip, `max_line` bytes a line."""

    max_decompressed: int
    max_line: int

    @classmethod
    def from_settings(cls) -> ReadLimits:
        from django.conf import settings

        return cls(
            max_decompressed=settings.ARBITER_IMPORT_MAX_DECOMPRESSED_BYTES,
            max_line=settings.ARBITER_IMPORT_MAX_LINE_BYTES,
        )


class ImportLimitExceeded(ValueError):  # noqa: N818 - reads better at the raise site
    """The file as a whole is over a limit: the import stops, nothing is committed."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


# A run of blank lines and the whitespace that starts the next line (JSON ignores it).
_BLANK = re.compile(rb"[ \t\r\n]+")
_SPACE = frozenset(b" \t\r\n")


def bounded_lines(
    stream: io.RawIOBase | io.BufferedIOBase,
    *,
    max_line: int,
    max_total: int | None,
    block: int = READ_BUFFER,
) -> Iterator[tuple[int, bytes | InvalidRecord]]:
    """(line number, line) for every non-blank line of `stream`, holding at most a block and one line.

    A line longer than `max_line` bytes comes out as an InvalidRecord (the rest of it is read and dropped);
    past `max_total` bytes read (when given) ImportLimitExceeded is raised.
    """
    lineno = 0  # newlines consumed
    total = 0
    buf = b""
    skipping = False  # inside a line that was too long: drop bytes up to its newline
    while True:
        data = stream.read(block)
        if not data:
            break
        total += len(data)
        if max_total is not None and total > max_total:
            raise ImportLimitExceeded(
                lineno + 1,
                f"the file decompresses to more than the limit of {human_size(max_total)} "
                "(ARBITER_IMPORT_MAX_DECOMPRESSED_MB); nothing was imported",
            )
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                continue
            lineno += 1
            skipping = False
            data = data[nl + 1 :]
        buf = buf + data if buf else data
        pos = 0
        end = len(buf)
        while pos < end:
            if buf[pos] in _SPACE:  # rare but for blank lines: one C call steps over the whole run
                blank = _BLANK.match(buf, pos)
                lineno += buf.count(b"\n", pos, blank.end())
                pos = blank.end()
                if pos >= end:
                    break
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            lineno += 1
            if nl - pos > max_line:
                yield lineno, _too_long(max_line)
            else:
                yield lineno, buf[pos:nl]
            pos = nl + 1
        buf = buf[pos:]
        if len(buf) > max_line:
            yield lineno + 1, _too_long(max_line)
            buf, skipping = b"", True
    if buf.strip() and not skipping:
        yield lineno + 1, buf


def _too_long(max_line: int) -> InvalidRecord:
    return InvalidRecord(
        f"the line is longer than the limit of {human_size(max_line)} (ARBITER_IMPORT_MAX_LINE_BYTES); not read"
    )


class RecordReader:
    def __init__(self, path: str | os.PathLike, limits: ReadLimits | None = None):
        self.path = Path(path)
        self.limits = limits or ReadLimits.from_settings()
        self.size = max(self.path.stat().st_size, 1)
        with open(self.path, "rb") as fh:
            magic = fh.read(4)
        self.kind = "parquet" if magic == b"PAR1" else "gzip" if magic[:2] == b"\x1f\x8b" else "jsonl"
        self._raw: io.BufferedReader | None = None
        self._rows_done = 0
        self._rows_total = 1

    def fraction(self) -> float:
        if self.kind == "parquet":
            return min(self._rows_done / self._rows_total, 1.0)
        if self._raw is None or self._raw.closed:
            return 1.0
        return min(self._raw.tell() / self.size, 1.0)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if self.kind == "parquet":
            yield from self._parquet()
        else:
            yield from self._jsonl()

    def _jsonl(self) -> Iterator[tuple[int, Any]]:
        with open(self.path, "rb", buffering=READ_BUFFER) as raw:
            self._raw = raw
            stream = (
                io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), READ_BUFFER)
                if self.kind == "gzip"
                else raw
            )
            lineno = 0
            lines = bounded_lines(
                stream,
                max_line=self.limits.max_line,
                max_total=self.limits.max_decompressed if self.kind == "gzip" else None,
            )
            try:
                for lineno, line in lines:  # noqa: B007 - lineno used after the loop
                    if isinstance(line, InvalidRecord):
                        yield lineno, line
                        continue
                    try:
                        obj = orjson.loads(line)
                    except orjson.JSONDecodeError as e:
                        yield lineno, InvalidRecord(f"invalid JSON: {e}")
                        continue
                    if not isinstance(obj, dict):
                        yield lineno, InvalidRecord(f"not a JSON object (a {type(obj).__name__})")
                        continue
                    yield lineno, obj
            except (OSError, EOFError, zlib.error) as e:
                yield lineno + 1, InvalidRecord(f"the file is truncated or corrupt from here on: {e}")

    def _parquet(self) -> Iterator[tuple[int, Any]]:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            yield 1, InvalidRecord(f"not a readable Parquet file: {e}")
            return
        self._rows_total = max(pf.metadata.num_rows, 1)
        meta = pf.metadata
        unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if unpacked > self.limits.max_decompressed:
            raise ImportLimitExceeded(
                1,
                f"the Parquet file decompresses to {human_size(unpacked)}, more than the limit of "
                f"{human_size(self.limits.max_decompressed)} (ARBITER_IMPORT_MAX_DECOMPRESSED_MB); nothing was imported",
            )
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for obj in batch.to_pylist():
                    row += 1
                    yield row, obj
                self._rows_done = row
        except Exception as e:  # noqa: BLE001
            yield row + 1, InvalidRecord(f"the Parquet file is corrupt from here on: {e}")
