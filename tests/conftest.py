"""Session-wide fixtures: a real Redis server, a clean settings environment and a signing key.

This module must not import engine modules at import time, so that the suite
still collects while parts of the engine are missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_server import RedisServer, serving
from signing_keys import SESSION_SIGNING_KEY

from broker_config.settings import ENV_PREFIX, reset_settings


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` subprocess on a free port, shared by the whole session.

    Fault tests may ``stop()``/``kill()`` and ``start()`` it; the port is kept.
    """
    yield from serving(RedisServer())


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which it may kill, restart or misconfigure."""
    yield from serving(RedisServer())


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


@pytest.fixture(scope="session")
def signing_key() -> str:
    """The session's random ``CELERITY_SIGNING_KEY``: every test and fleet process has it."""
    return SESSION_SIGNING_KEY


@pytest.fixture(scope="session")
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``XDG_CONFIG_HOME`` of the session's own: tests never touch the user's ~/.config."""
    return tmp_path_factory.mktemp("config-home")


@pytest.fixture(autouse=True)
def clean_settings(
    monkeypatch: pytest.MonkeyPatch, signing_key: str, config_home: Path
) -> Iterator[None]:
    """Start every test on the embedded defaults, whatever the outer shell exports,
    plus the session's signing key (a fleet process refuses to start without one)."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CELERITY_SIGNING_KEY", signing_key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    reset_settings()
    yield
    # Settings cached during the test may reflect its monkeypatched environment.
    reset_settings()
