"""Django's Redis cache backend with one connection pool per process, and `incr` in one round trip.

Django keeps a cache backend instance per thread, and its Redis backend makes its connection pool per
instance. Under ASGI every request runs in a thread of its own, so every request built a new pool and opened
a new connection to Redis (TCP, then the client's handshake) for the one or two commands it sent: profiled,
that was the largest single cost of a workbench submit. Here the pool is per process and shared by threads
(redis-py's pools are thread-safe and reset themselves in a forked child). The client object over a pool is
kept per process too: Django's backend makes a new `redis.Redis` for every command, and building one (its
table of some 170 response callbacks) cost more CPU than the command it sent. redis-py's clients are safe to
share between threads; each command takes a connection from the pool and gives it back.

`incr` is Django's "increment an existing key, else ValueError" as one server-side script instead of EXISTS
then INCRBY: one round trip, and no window in which the key expires between the two and INCRBY recreates it
without a timeout. `count(key, timeout)` is what the submit rate limiter needs in one round trip: increment the
key, creating it with that timeout when it is missing.
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_pools: dict[tuple, object] = {}
_clients: dict[int, object] = {}  # id(pool) -> the redis.Redis over it
_pools_lock = threading.Lock()

_INCR_EXISTING = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('incrby', KEYS[1], ARGV[1]) end return false"
_COUNT = (
    "local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('expire', KEYS[1], ARGV[1]) end return n"
)


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

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = _clients.get(id(pool))
        if client is None:
            with _pools_lock:
                client = _clients.get(id(pool))
                if client is None:
                    client = _clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        value = client.eval(_INCR_EXISTING, 1, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def count(self, key, timeout):
        return self.get_client(key, write=True).eval(_COUNT, 1, key, timeout)


class RedisCache(DjangoRedisCache):
    """`django.core.cache.backends.redis.RedisCache` with a per-process pool and a one-trip `incr`."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedPoolClient

    def count(self, key, timeout: int) -> int:
        """Increment `key` and return its value; a missing key is created as 1 with `timeout` seconds to live
        (one round trip, atomic)."""
        return self._cache.count(self.make_and_validate_key(key), int(timeout))
