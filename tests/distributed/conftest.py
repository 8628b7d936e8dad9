"""Fixtures for distributed tests: a flows directory and a fleet on the session's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .fleet import Fleet, session_fleet

FLOWS = '''\
from engine import flow, get_run_logger, task


@task
def square(x: int) -> int:
    return x * x


@task
def add(a: int, b: int) -> int:
    return a + b


@flow
def approval_gate(amount: int) -> str:
    from engine import pause_flow_run
    from engine.input import RunInput

    class Decision(RunInput):
        approved: bool

    decision = pause_flow_run(wait_for_input=Decision, timeout=60)
    return f"{amount} approved" if decision.approved else f"{amount} refused"


@flow
def pipeline(x: int) -> int:
    first, second = square.submit(x), square.submit(x + 1)
    total = add.submit(first, second).result()
    get_run_logger().info("pipeline total is %s", total)
    return total
'''


@pytest.fixture(autouse=True)
def isolated_store() -> Iterator[None]:
    """Each test builds its own process store from its settings; the previous one comes back."""
    from process_store import fresh_process_store

    with fresh_process_store():
        yield


@pytest.fixture(scope="module")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory (put on the fleet's PYTHONPATH) holding ``dist_flows.py``."""
    directory = tmp_path_factory.mktemp("flows")
    (directory / "dist_flows.py").write_text(FLOWS)
    return directory


@pytest.fixture(scope="module")
def fleet(
    redis_server, flows_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Two prefork workers and a coordinator on the session's (flushed) Redis, for one module."""
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    with session_fleet(redis_server, tmp_path_factory, "fleet", pythonpath=[flows_dir]) as running:
        yield running
