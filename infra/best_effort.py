"""Redis is best-effort (DESIGN.md "How it runs"): the cache, the broker's fire-and-forget sends and the channel
layer may be down, and every request must still answer from PostgreSQL.

An `Outage` tracks one such service in this process. A failed call marks it down for
ARBITER_REDIS_RETRY_SECONDS: calls meanwhile skip it at once (a Redis that is unreachable, not refused, would
otherwise cost every request the socket timeout). The log gets one warning per ARBITER_REDIS_WARN_SECONDS per
service, naming what failed and how many failures it stood for, without a traceback; and one line when the
service answers again.

`cache_call(what, fn, *args)` runs one cache call that way and answers `DOWN` (or `default`) when it cannot.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis.exceptions
from django.conf import settings

log = logging.getLogger(__name__)
DOWN = object()  # what `cache_call` answers, by default, when the cache could not be asked


class Outage:
    def __init__(self, service: str) -> None:
        self.service = service
        self._lock = threading.Lock()
        self.down_until = 0.0  # monotonic: skip calls until then
        self.next_warning = 0.0
        self.failures = 0  # since the last warning
        self.down = False

    def reset(self) -> None:
        """Forget the service's state (a fresh process knows nothing of an outage)."""
        with self._lock:
            self.down_until = self.next_warning = 0.0
            self.failures = 0
            self.down = False

    def skip(self) -> bool:
        """True while the service is marked down (the call is counted as failed, not made)."""
        if time.monotonic() >= self.down_until:
            return False
        with self._lock:
            self.failures += 1
        return True

    def failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self.down = True
            self.failures += 1
            self.down_until = now + float(getattr(settings, "ARBITER_REDIS_RETRY_SECONDS", 5.0))
            if now < self.next_warning:
                return
            count, self.failures = self.failures, 0
            self.next_warning = now + float(getattr(settings, "ARBITER_REDIS_WARN_SECONDS", 60.0))
        log.warning(
            "%s unavailable (%s: %s: %s); %d failed or skipped call(s) since the last warning; answering "
            "without it, next warning in %g s at the earliest",
            self.service,
            what,
            type(exc).__name__,
            exc,
            count,
            float(getattr(settings, "ARBITER_REDIS_WARN_SECONDS", 60.0)),
        )

    def ok(self) -> None:
        if self.down:
            with self._lock:
                was, self.down, self.failures, self.next_warning = self.down, False, 0, 0.0
            if was:
                log.warning("%s answers again", self.service)


CACHE = Outage("cache (Redis)")
BROKER = Outage("job queue (Celery broker)")
CHANNELS = Outage("channel layer (Redis)")


def cache_call(what: str, fn, *args, default: Any = DOWN, passthrough: tuple = (), **kwargs) -> Any:
    """`fn(*args, **kwargs)` (a cache method), or `default` when the cache is down (one warning an interval).
    Exceptions in `passthrough` are the call's own answer (Django's `incr` of a missing key: ValueError)."""
    if CACHE.skip():
        return default
    try:
        value = fn(*args, **kwargs)
    except passthrough:
        CACHE.ok()
        raise
    except Exception as exc:  # noqa: BLE001 - the cache is best-effort; the database stays the truth
        CACHE.failed(what, exc)
        return default
    CACHE.ok()
    return value


def guarded(outage: Outage, what: str, fn, *args, **kwargs) -> bool:
    """Run a fire-and-forget call on `outage`'s service; False when it is down or failed."""
    if outage.skip():
        return False
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - best-effort: the write that asked must still succeed
        outage.failed(what, exc)
        return False
    outage.ok()
    return True


async def guarded_async(outage: Outage, what: str, fn, *args, skip: bool = True, **kwargs) -> bool:
    """`guarded` for a coroutine function (a channel layer call in a websocket consumer). `skip=False` makes the
    call even while the service is marked down (leaving a group: a socket's groups must go when it can)."""
    if skip and outage.skip():
        return False
    try:
        await fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - best-effort: the socket ends cleanly, the page polls instead
        outage.failed(what, exc)
        return False
    outage.ok()
    return True


UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class ChannelLayerOutage(logging.Filter):
    """A logging filter for the channel layer's own logger (settings.LOGGING: `channels_redis.core` and `.pubsub`). channels_redis
    logs a whole traceback each time it cannot reach Redis, e.g. while it cleans up a closed socket's channel;
    such a record counts as a channel layer failure instead (one warning an interval, no traceback). Other records
    pass as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, UNREACHABLE):
            CHANNELS.failed(record.getMessage().rstrip(":"), exc)
            return False
        return True
