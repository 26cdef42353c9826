"""Per-user submit rate limit: a bucket of ARBITER_SUBMIT_BURST submits refilled at ARBITER_SUBMIT_RATE per second.

Cheap on the hot path: one counter per (user, window) in the cache, where a window lasts burst/rate seconds (so
the sustained rate is `rate`, bursts up to `burst`), through Django's cache API alone: `incr` (one round trip
with django-redis), and the first submit of a window `add`s the key with its timeout. Best-effort: when the
cache is down the submit goes through and the failure is logged.
"""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse

log = logging.getLogger(__name__)


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
    try:
        try:
            count = cache.incr(key)
        except ValueError:  # first submit of this window
            count = 1 if cache.add(key, 1, timeout=timeout) else cache.incr(key)
    except Exception:  # noqa: BLE001 - the limiter must never stop a submit when the cache is down
        log.warning("submit rate limit skipped: cache unavailable", exc_info=True)
        return None
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
