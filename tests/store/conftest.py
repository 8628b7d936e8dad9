"""Fixtures for the run store contract suite: one ``store`` per backend.

The Redis store runs against a real ``redis-server``. When the project-wide
``redis_url`` fixture (tests/conftest.py) is available it is used; otherwise
this module starts its own server for the session (``_store_redis_url``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from engine.store.base import RunStore
from engine.store.memory import MemoryRunStore
from engine.store.redis import RedisRunStore

StoreFactory = Callable[[], RunStore]

READY_TIMEOUT_SECONDS = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_ping(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    client = redis.Redis.from_url(url, socket_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited early (code {process.returncode})")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)  # polling a starting server, not synchronising tests
        raise RuntimeError(f"redis-server at {url} did not answer PING")
    finally:
        client.close()


@pytest.fixture(scope="session")
def _store_redis_url() -> Iterator[str]:
    """A private redis-server for this suite, started once per session."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port)]
    command += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_for_ping(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def store_redis_url(request: pytest.FixtureRequest) -> str:
    """The shared ``redis_url`` fixture if the project provides one, else ours."""
    try:
        return str(request.getfixturevalue("redis_url"))
    except pytest.FixtureLookupError:
        return str(request.getfixturevalue("_store_redis_url"))


@pytest.fixture
def key_prefix() -> str:
    """A prefix no other test uses, so tests never see each other's keys."""
    return f"celerity-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[StoreFactory]:
    """Open handles on one backing store (memory: the same object; Redis: new clients)."""
    opened: list[RunStore] = []
    if request.param == "memory":
        shared = MemoryRunStore()
        opened.append(shared)

        def factory() -> RunStore:
            return shared

    else:
        factory = request.getfixturevalue("open_redis_store")

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def open_redis_store(
    store_redis_url: str, key_prefix: str
) -> Iterator[Callable[[], RedisRunStore]]:
    """Open new clients on one Redis store (this test's prefix); closed after the test."""
    opened: list[RedisRunStore] = []

    def factory() -> RedisRunStore:
        store = RedisRunStore(store_redis_url, prefix=key_prefix)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> RunStore:
    """The store under test, once per backend."""
    return make_store()
