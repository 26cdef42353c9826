"""Process-wide interpreter settings changed around bulk work (imports, exports): the cycle collector paused,
the GIL's switch interval shortened.

Bulk work allocates millions of short-lived, acyclic containers (decoded lines, parsed pairs, row dicts and
tuples). Reference counting frees them as they go, but batches of them outlive the young generations, and the
collector keeps re-walking them, and every so often the whole process heap: measured at a tenth of an import's
CPU and over a third of an export's. Nothing in those loops makes reference cycles, so nothing piles up while
the collector rests, and memory stays flat.

An import's parsing thread and writing thread share the GIL; the writer mostly waits on the database and
should get the GIL back soon after the database wants more rows (`switch_interval`; see importers/__init__.py).

Freed memory is kept for reuse while an export runs (`heap_kept`, glibc only). A batch of rows (libpq's
chunk, the lines, their join) takes a few MiB of the C heap and frees it; glibc's default gives that back to the
system as soon as more than its trim threshold lies free at the top of the heap (128 KiB at first, raised to
twice the largest block it has mapped and unmapped), so every batch of a `trl` export asked the kernel for the
same pages again: 365,000 page faults and 0.9 s of a 3.3 s export's CPU at 1,000,000 judgments. Kept, 30,000
and 2.4 s, the same peak memory (a batch's pages are reused, not added to).

All three are counted: overlapping bulk jobs in one process (threads of a worker) restore the setting only when
the last one ends, and restore what was there before the first began: exactly for the collector and the switch
interval. For the heap, glibc has no way to read its thresholds, and once a program sets one glibc stops moving
it by itself. A threshold the environment sets (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`) goes back
to that value; the others stay at the kept values, which are the largest glibc's own rule would raise them to
(a long-lived worker that later trains or scores on the CPU would otherwise be pinned at glibc's starting
128 KiB, mapping and unmapping every larger block, which is what that rule exists to prevent). Either way the
free memory is then handed back to the system (`malloc_trim`).
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

_lock = threading.Lock()
_pausers = 0
_was_enabled = False
_shorteners = 0
_interval_before = 0.0
_keepers = 0


@contextmanager
def collector_paused() -> Iterator[None]:
    global _pausers, _was_enabled
    with _lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()


@contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """The GIL's switch interval at most `seconds` while any holder runs; the first one's original after."""
    global _shorteners, _interval_before
    with _lock:
        if _shorteners == 0:
            _interval_before = sys.getswitchinterval()
        _shorteners += 1
        sys.setswitchinterval(min(seconds, sys.getswitchinterval()))
    try:
        yield
    finally:
        with _lock:
            _shorteners -= 1
            if _shorteners == 0:
                sys.setswitchinterval(_interval_before)


# glibc's mallopt parameters (malloc.h) and the values kept while bulk work runs: what glibc's own dynamic rule
# rises to at most on 64-bit systems (blocks up to 32 MiB from the heap, 64 MiB free at its top before trimming).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEPT = {M_TRIM_THRESHOLD: 64 << 20, M_MMAP_THRESHOLD: 32 << 20}
_ENV = {M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_", M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_"}


@cache
def _glibc():
    """The C library when it is glibc (mallopt and malloc_trim), else None."""
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
        libc = ctypes.CDLL(None)
    except (ValueError, OSError, AttributeError):
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _after(param: int) -> int | None:
    """The environment's value of a threshold, which it goes back to; None: it stays where it was kept."""
    value = os.environ.get(_ENV[param], "")
    return int(value) if value.isdigit() else None


@contextmanager
def heap_kept() -> Iterator[None]:
    """glibc keeps freed heap memory for reuse while any holder runs (module note); a no-op elsewhere."""
    global _keepers
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        if _keepers == 0:
            for param, value in KEPT.items():
                libc.mallopt(param, value)
        _keepers += 1
    try:
        yield
    finally:
        with _lock:
            _keepers -= 1
            if _keepers == 0:
                for param in KEPT:
                    if (value := _after(param)) is not None:
                        libc.mallopt(param, value)
                libc.malloc_trim(0)
