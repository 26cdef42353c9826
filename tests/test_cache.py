"""config/cache.py: one Redis connection pool per process for every thread, and Django's incr semantics."""

from __future__ import annotations

import threading
import uuid

import pytest

from config.cache import RedisCache
from tests.backends import require_redis


@pytest.fixture
def redis_cache() -> RedisCache:
    url = require_redis()
    return RedisCache(url, {"KEY_PREFIX": f"test-cache-{uuid.uuid4().hex[:8]}", "OPTIONS": {}})


def _from_threads(url: str, n: int, pick) -> list:
    """`pick(backend)` from a backend made and used in each of `n` threads, as each request's thread gets one."""
    found = []

    def in_a_thread():
        backend = RedisCache(url, {"KEY_PREFIX": "x", "OPTIONS": {}})
        backend.set("probe", 1)
        found.append(pick(backend))

    threads = [threading.Thread(target=in_a_thread) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found


def test_backends_made_in_different_threads_share_one_connection_pool(redis_cache):
    """Django makes a backend instance per thread, and ASGI runs each request in its own thread."""
    pools = _from_threads(redis_cache._servers[0], 8, lambda b: b._cache._get_connection_pool(write=True))
    assert len(pools) == 8 and all(pool is pools[0] for pool in pools)
    assert len(pools[0]._available_connections) + len(pools[0]._in_use_connections) <= 8


def test_incr_counts_an_existing_key_and_refuses_a_missing_one_without_creating_it(redis_cache):
    redis_cache.set("counter", 1, timeout=60)
    assert redis_cache.incr("counter") == 2
    assert redis_cache.incr("counter", 5) == 7
    with pytest.raises(ValueError, match="not found"):
        redis_cache.incr("missing")
    assert redis_cache.get("missing") is None
    client = redis_cache._cache.get_client(write=True)
    assert 0 < client.ttl(redis_cache.make_and_validate_key("counter")) <= 60  # incr keeps the timeout


def test_backends_in_different_threads_share_one_client(redis_cache):
    """Django's backend built a new redis.Redis (some 170 response callbacks) for every command."""
    clients = _from_threads(redis_cache._servers[0], 4, lambda b: b._cache.get_client(write=True))
    assert len(clients) == 4 and all(client is clients[0] for client in clients)
    assert clients[0].connection_pool is redis_cache._cache._get_connection_pool(write=True)


def test_count_creates_a_missing_key_with_its_timeout_and_increments_an_existing_one(redis_cache):
    assert redis_cache.count("window", 30) == 1
    assert redis_cache.count("window", 30) == 2
    assert redis_cache.get("window") == 2  # an integer, readable with Django's serializer as incr leaves it
    client = redis_cache._cache.get_client(write=True)
    ttl = client.ttl(redis_cache.make_and_validate_key("window"))
    assert 0 < ttl <= 30
    client.expire(redis_cache.make_and_validate_key("window"), 100)
    assert redis_cache.count("window", 30) == 3
    assert client.ttl(redis_cache.make_and_validate_key("window")) > 30  # only a new key gets the timeout
