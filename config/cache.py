"""Django's Redis cache backend with one connection pool per process, and `incr` in one round trip.

Django keeps a cache backend instance per thread, and its Redis backend makes its connection pool per
instance. Under ASGI every request runs in a thread of its own, so every request built a new pool and opened
a new connection to Redis (TCP, then the client's handshake) for the one or two commands it sent: profiled,
that was the largest single cost of a workbench submit. Here the pool is per process and shared by threads
(redis-py's pools are thread-safe and reset themselves in a forked child).

`incr` is Django's "increment an existing key, else ValueError" as one server-side script instead of EXISTS
then INCRBY: one round trip, and no window in which the key expires between the two and INCRBY recreates it
without a timeout (the submit rate limiter counts in such keys).
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_pools: dict[tuple, object] = {}
_pools_lock = threading.Lock()

_INCR_EXISTING = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('incrby', KEYS[1], ARGV[1]) end return false"


class SharedPoolClient(RedisCacheClient):
    def _get_connection_pool(self, write):
        index = self._get_connection_pool_index(write)
        key = (self._servers[index], repr(sorted(self._pool_options.items())))
        pool = _pools.get(key)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = self._pool_class.from_url(self._servers[index], **self._pool_options)
                    _pools[key] = pool
        return pool

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        value = client.eval(_INCR_EXISTING, 1, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


class RedisCache(DjangoRedisCache):
    """`django.core.cache.backends.redis.RedisCache` with a per-process pool and a one-trip `incr`."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolClient
