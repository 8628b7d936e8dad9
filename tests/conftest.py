"""Session-wide fixtures: a real Redis server and a clean settings environment.

This module must not import engine modules at import time, so that the suite
still collects while parts of the engine are missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from redis_server import RedisServer

from broker_config.settings import ENV_PREFIX, reset_settings


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` subprocess on a free port, shared by the whole session.

    Fault tests may ``stop()``/``kill()`` and ``start()`` it; the port is kept.
    """
    yield from _running_redis()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which it may kill, restart or misconfigure."""
    yield from _running_redis()


def _running_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's Redis, emptied (FLUSHALL) before the test."""
    # A previous fault test may have left the server stopped.
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start every test on the embedded defaults, whatever the outer shell exports."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    reset_settings()
    yield
    # Settings cached during the test may reflect its monkeypatched environment.
    reset_settings()
