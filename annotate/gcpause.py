"""Python's cycle collector paused around bulk work (imports, exports).

Bulk work allocates millions of short-lived, acyclic containers (decoded lines, parsed pairs, row dicts and
tuples). Reference counting frees them as they go, but batches of them outlive the young generations, and the
collector keeps re-walking them, and every so often the whole process heap: measured at a tenth of an import's
CPU and over a third of an export's. Nothing in those loops makes reference cycles, so nothing piles up while
the collector rests, and memory stays flat.

The pause is counted: overlapping bulk jobs in one process (threads of a worker) turn the collector back on
only when the last one ends, and only if it was on before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0
_was_enabled = False


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
