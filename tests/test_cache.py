"""The shipped Redis cache (django-redis, config/settings.py): one connection pool per process for every request
thread, Django's incr semantics, and the rate limiter's window key with its timeout."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import InvalidCacheBackendError
from django_redis import get_redis_connection

from tests.backends import require_redis


@pytest.fixture
def redis_cache(settings):
    url = require_redis()
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"test-cache-{uuid.uuid4().hex[:8]}",
        }
    }
    cache = caches["default"]
    yield cache
    cache.clear()


def test_the_shipped_cache_is_django_redis(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    import importlib

    from config import settings as config_settings

    try:
        reloaded = importlib.reload(config_settings)
        assert reloaded.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
    finally:
        monkeypatch.undo()
        importlib.reload(config_settings)
    with pytest.raises(InvalidCacheBackendError):
        caches["no-such-cache"]


def test_request_threads_share_one_connection_pool(redis_cache):
    """Django keeps a backend instance per thread; every request thread must reuse the process's pool."""
    pools = []

    def in_a_thread():
        caches["default"].set("probe", 1)
        pools.append(get_redis_connection("default").connection_pool)

    threads = [threading.Thread(target=in_a_thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pools) == 8 and all(pool is pools[0] for pool in pools)


def test_incr_counts_an_existing_key_and_refuses_a_missing_one_without_creating_it(redis_cache):
    redis_cache.set("counter", 1, timeout=60)
    assert redis_cache.incr("counter") == 2
    assert redis_cache.incr("counter", 5) == 7
    with pytest.raises(ValueError):
        redis_cache.incr("missing")
    assert redis_cache.get("missing") is None
    assert 0 < redis_cache.ttl("counter") <= 60  # incr keeps the timeout


def test_the_submit_rate_window_key_gets_its_timeout_and_counts(redis_cache, settings):
    from infra.ratelimit import submit_retry_after

    settings.ARBITER_SUBMIT_RATE = 0.1  # a window of 200 s
    settings.ARBITER_SUBMIT_BURST = 20
    user_id = int(uuid.uuid4().int % 10**9)
    assert submit_retry_after(user_id) is None
    assert submit_retry_after(user_id) is None
    keys = list(redis_cache.iter_keys(f"arbiter:submit-rate:{user_id}:*"))
    assert len(keys) == 1
    assert redis_cache.get(keys[0]) == 2
    assert 0 < redis_cache.ttl(keys[0]) <= 201
