"""Which optional backends (Redis, Chromium) this machine has; PostgreSQL is always there (embedded when no
DATABASE_URL is set). A missing one skips its tests with the reason, unless ARBITER_REQUIRE_BACKENDS=1 (set by
.ci/run), where it fails them instead."""

from __future__ import annotations

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest

REQUIRE = os.environ.get("ARBITER_REQUIRE_BACKENDS") == "1"


def missing(reason: str):
    if REQUIRE:
        pytest.fail(f"required backend missing: {reason}", pytrace=False)
    pytest.skip(reason)


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def require_redis() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        missing("Redis: REDIS_URL is not set")
    if not _reachable(url, 6379):
        missing(f"Redis: {url} is unreachable")
    return url


# Chromium's flags for the browser tests and scripts: headless in a container, no network of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.path.exists(candidate):
            return candidate
    missing("Chromium: Debian's chromium package is not installed (/usr/bin/chromium)")
    raise AssertionError("unreachable")
