"""Fixtures for the chaos fault suite: a fleet with a short lease, a Redis with AOF.

Every test here is marked ``faults`` (``pytest -m faults`` runs them alone).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from redis_server import RedisServer, serving

TESTS_DIR = Path(__file__).resolve().parents[1]




class PersistentRedisServer(RedisServer):
    """A ``redis-server`` with an append-only file fsynced on every write: a restart
    (even after SIGKILL) loses nothing acknowledged."""

    def _command(self) -> list[str]:
        args = super()._command()
        args[args.index("--appendonly") + 1] = "yes"
        return [*args, "--appendfsync", "always"]


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, with AOF (appendfsync always), which it may kill."""
    yield from serving(PersistentRedisServer())


@pytest.fixture
def chaos_key() -> str:
    """The prefix of this test's ledger keys in Redis."""
    return f"chaos-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def chaos_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractContextManager]:
    """``chaos_fleet(url, lease=1, workers=2, concurrency=2)``: a fleet of real
    ``celerity worker`` processes and one coordinator on ``url``, every process (and
    this one) with ``CELERITY_LEASE_SECONDS=lease``; this process's store is built
    anew for it and closed afterwards."""
    from distributed.fleet import running_fleet, use_broker
    from process_store import fresh_process_store

    @contextmanager
    def start(url: str, *, lease: float = 1, workers: int = 2, concurrency: int = 2):
        extra = {"CELERITY_LEASE_SECONDS": str(lease)}
        with running_fleet(
            url,
            tmp_path / "fleet.log",
            workers=workers,
            concurrency=concurrency,
            pythonpath=[TESTS_DIR],
            env=extra,
        ) as fleet:
            use_broker(monkeypatch, url, **extra)
            with fresh_process_store():
                yield fleet

    return start
