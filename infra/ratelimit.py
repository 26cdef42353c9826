"""Per-user submit rate limit: a bucket of ARBITER_SUBMIT_BURST submits refilled at ARBITER_SUBMIT_RATE per second.

Cheap on the hot path: one counter per (user, window) in the cache, where a window lasts burst/rate seconds (so
the sustained rate is `rate`, bursts up to `burst`), through Django's cache API alone: `incr` (one round trip
with django-redis), and the first submit of a window `add`s the key with its timeout. When the cache is down
(infra/best_effort.py: one warning an interval, no traceback) the same windows are counted in this process
instead: the limit still holds per server process (with W processes a user gets at most W times the burst).
"""

from __future__ import annotations

import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse

from infra.best_effort import DOWN, cache_call

log = logging.getLogger(__name__)


class LocalWindows:
    """The fallback counter: (user, window) -> submits, in this process; windows before the current one go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, int], int] = {}
        self._index = 0

    def incr(self, user_id: int, index: int) -> int:
        with self._lock:
            if index != self._index:  # a new window: the old counts can never matter again
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= index}
                self._index = index
            count = self._counts.get((user_id, index), 0) + 1
            self._counts[(user_id, index)] = count
            return count


local_windows = LocalWindows()


def _shared_count(key: str, timeout: int):
    """The window's count in the cache after this submit, or DOWN."""
    try:
        return cache_call("submit rate limit", cache.incr, key, passthrough=(ValueError,))
    except ValueError:  # first submit of this window (Django's incr of a missing key)
        added = cache_call("submit rate limit", cache.add, key, 1, timeout=timeout)
        if added is DOWN or added:
            return DOWN if added is DOWN else 1
        return cache_call("submit rate limit", cache.incr, key)


def submit_retry_after(user_id: int) -> int | None:
    """None when this user may submit now (counting this submit); else the seconds until they may again."""
    rate = float(getattr(settings, "ARBITER_SUBMIT_RATE", 10.0))
    burst = max(1, int(getattr(settings, "ARBITER_SUBMIT_BURST", 20)))
    if rate <= 0:
        return None
    window = burst / rate
    now = time.time()
    index = int(now // window)
    key = f"arbiter:submit-rate:{user_id}:{index}"
    timeout = math.ceil(window) + 1
    count = _shared_count(key, timeout)
    if count is DOWN:
        count = local_windows.incr(user_id, index)
    if count <= burst:
        return None
    return max(1, math.ceil((index + 1) * window - now))


def too_many_submits(retry_after: int, *, json: bool) -> HttpResponse:
    message = (
        f"Too many submits: at most {settings.ARBITER_SUBMIT_RATE:g} per second. Retry in {retry_after} s."
    )
    if json:
        response = JsonResponse({"error": message, "retry_after": retry_after}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    return response
