"""Process-wide interpreter settings changed around bulk work (imports, exports): the cycle collector paused,
the GIL's switch interval shortened.

Bulk work allocates millions of short-lived, acyclic containers (decoded lines, parsed pairs, row dicts and
tuples). Reference counting frees them as they go, but batches of them outlive the young generations, and the
collector keeps re-walking them, and every so often the whole process heap: measured at a tenth of an import's
CPU and over a third of an export's. Nothing in those loops makes reference cycles, so nothing piles up while
the collector rests, and memory stays flat.

An import's parsing thread and writing thread share the GIL; the writer mostly waits on the database and
should get the GIL back soon after the database wants more rows (`switch_interval`; see importers/__init__.py).

Both are counted: overlapping bulk jobs in one process (threads of a worker) restore the setting only when the
last one ends, and restore exactly what was there before the first began.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0
_was_enabled = False
_shorteners = 0
_interval_before = 0.0


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
