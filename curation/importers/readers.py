"""Streamed readers: JSONL, gzipped JSONL and Parquet, one record at a time with its line (or row) number.

The container is recognised by its first bytes (gzip magic, Parquet's `PAR1`), not by its name, so an
uploaded file keeps working whatever it was called. Memory stays flat: JSONL is read line by line, Parquet
in record batches.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

PARQUET_BATCH_ROWS = 4096
# Reads of a mebibyte, not Python's default 8 KiB (about ten lines): every read releases the GIL, and the
# reader thread must then wait for the writing thread to hand it back (up to the 5 ms switch interval).
READ_BUFFER = 1 << 20


class InvalidRecord:
    """A line that is not a JSON object (or could not be read): reported, never parsed further."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


class RecordReader:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
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
            try:
                for lineno, line in enumerate(stream, 1):  # noqa: B007 - lineno used after the loop
                    if not line.strip():
                        continue  # blank lines (a trailing newline, say) are not records
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
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for obj in batch.to_pylist():
                    row += 1
                    yield row, obj
                self._rows_done = row
        except Exception as e:  # noqa: BLE001
            yield row + 1, InvalidRecord(f"the Parquet file is corrupt from here on: {e}")
