"""Fault tests: real processes are killed mid-run; nothing is lost, nothing completes twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine import flow, task
from engine.store import get_store

from .fleet import Fleet, running_fleet, use_broker

pytestmark = pytest.mark.faults

TESTS_DIR = Path(__file__).resolve().parents[1]
LEASE_SECONDS = "1"


def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["CELERITY_BROKER_URL"])


@task(retries=1)
def slow_and_marked(key: str) -> str:
    client = _client()
    client.rpush(f"{key}:started", os.getpid())
    time.sleep(4)  # the test kills this process meanwhile
    client.rpush(f"{key}:finished", os.getpid())
    return "survived"


@flow
def one_slow_task(key: str):
    future = slow_and_marked.submit(key)
    return future.result(), future.task_run_id


@pytest.fixture
def fault_fleet(redis_url, tmp_path, monkeypatch) -> Iterator[Fleet]:
    from process_store import fresh_process_store

    extra = {"CELERITY_LEASE_SECONDS": LEASE_SECONDS}
    log_path = tmp_path / "fleet.log"
    with running_fleet(
        redis_url, log_path, workers=2, concurrency=1, pythonpath=[TESTS_DIR], env=extra
    ) as fleet:
        use_broker(monkeypatch, redis_url, **extra)
        with fresh_process_store():
            yield fleet


def _run_in_background(key: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = one_slow_task(key)
        except BaseException as exc:  # reported by the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _parent_pid(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def _assert_recovered(key: str, thread: threading.Thread, outcome: dict, fleet: Fleet) -> None:
    thread.join(90)
    assert not thread.is_alive(), fleet.log_tail()
    assert "error" not in outcome, (outcome.get("error"), fleet.log_tail())
    value, task_run_id = outcome["value"]
    assert value == "survived"
    client = _client()
    # The body started twice (first attempt killed) and finished exactly once.
    assert client.llen(f"{key}:started") == 2
    assert client.llen(f"{key}:finished") == 1
    names = [state.name for state in get_store().read_state_history(task_run_id)]
    assert names[:2] == ["Pending", "Running"]
    assert "AwaitingRetry" in names
    assert names[-1] == "Completed"
    assert names.count("Completed") == 1


class TestWorkerLoss:
    def test_killed_pool_child_is_taken_over_and_completes_once(self, fault_fleet):
        # Given a task run executing in a worker's pool child
        key = f"child-{time.monotonic_ns()}"
        thread, outcome = _run_in_background(key)
        started = _client().blpop([f"{key}:started"], timeout=60)
        assert started is not None, fault_fleet.log_tail()
        child = int(started[1])
        _client().lpush(f"{key}:started", child)  # keep the count honest
        # When that process is killed
        os.kill(child, signal.SIGKILL)
        # Then the run gets a new attempt and completes exactly once
        _assert_recovered(key, thread, outcome, fault_fleet)

    def test_killed_whole_worker_is_reaped_and_completes_once(self, fault_fleet):
        # Given a task run executing on one of two workers
        key = f"worker-{time.monotonic_ns()}"
        thread, outcome = _run_in_background(key)
        started = _client().blpop([f"{key}:started"], timeout=60)
        assert started is not None, fault_fleet.log_tail()
        child = int(started[1])
        _client().lpush(f"{key}:started", child)
        # When the whole worker (parent and pool child) is killed
        parent = _parent_pid(child)
        os.kill(parent, signal.SIGKILL)
        os.kill(child, signal.SIGKILL)
        # Then the coordinator's reaper sends the run to the other worker
        _assert_recovered(key, thread, outcome, fault_fleet)


class TestDeadRedis:
    def test_flow_against_dead_redis_fails_with_a_clear_error(self, monkeypatch):
        from process_store import fresh_process_store

        from engine.exceptions import StoreUnavailable

        use_broker(monkeypatch, "redis://127.0.0.1:1/0")
        with fresh_process_store(), pytest.raises(StoreUnavailable, match="Is Redis running"):
            one_slow_task("never")
