"""Bad input on the Celery runner gets a clear message and a final state, never a hang.

Unpicklable arguments and exceptions, a flow the workers cannot load, a
message signed with another key, Redis dying or losing its data mid-run: each
ends the affected runs Failed or Crashed with a reason a user can act on.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from engine import flow, task
from engine.store import get_store

from .fleet import TESTS_DIR, Fleet, running_fleet, session_fleet, use_broker

pytestmark = pytest.mark.faults

FLOW_TIMEOUT_SECONDS = 60


@task
def identity(x):
    return x


@task
def pair(a, b):
    return a, b


class UnpicklableError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.lock = threading.Lock()


@task
def raise_unpicklable():
    raise UnpicklableError("the disk is full")


@task
def wait_for_release(key: str) -> str:
    client = redis.Redis.from_url(os.environ["CELERITY_BROKER_URL"])
    client.rpush(f"{key}:started", os.getpid())
    client.blpop([f"{key}:release"], timeout=30)  # never released: Redis dies first
    return "released"


@flow
def lock_argument():
    return identity.submit(threading.Lock()).result()


@flow
def lock_argument_after_an_upstream():
    first = identity.submit(1)
    return pair.submit(first, threading.Lock()).result()


@flow(timeout_seconds=30)
def one_task():
    return identity.submit(1).result()


@flow
def unpicklable_exception():
    return raise_unpicklable.submit().result()


@flow
def blocked_on_a_worker(key: str):
    return wait_for_release.submit(key).result()


def _assert_all_final(flow_run_id: uuid.UUID) -> list:
    store = get_store()
    assert store.read_flow_run(flow_run_id).state.is_final()
    task_runs = store.read_task_runs(flow_run_id)
    assert all(run.state.is_final() for run in task_runs), [
        (run.name, run.state.name) for run in task_runs
    ]
    return task_runs


@pytest.fixture(scope="module")
def bad_input_fleet(redis_server, tmp_path_factory) -> Iterator[Fleet]:
    with session_fleet(
        redis_server, tmp_path_factory, "bad-input-fleet", workers=1, concurrency=2
    ) as fleet:
        yield fleet


@pytest.fixture
def on_fleet(bad_input_fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    use_broker(monkeypatch, bad_input_fleet.env["CELERITY_BROKER_URL"])
    return bad_input_fleet


class TestUnpicklableValues:
    @pytest.mark.parametrize(
        "the_flow, parameter",
        [(lock_argument, "x"), (lock_argument_after_an_upstream, "b")],
        ids=["sent-at-once", "parked-behind-an-upstream"],
    )
    def test_an_unpicklable_argument_fails_its_run_naming_the_parameter(
        self, on_fleet, the_flow, parameter
    ):
        # When a task is submitted with a threading.Lock as an argument
        state = the_flow(return_state=True)
        # Then the flow fails, naming the parameter and what cannot be pickled
        assert state.is_failed(), state
        message = str(state.result(raise_on_failure=False))
        assert f"Parameter '{parameter}'" in message
        assert "cannot pickle '_thread.lock' object" in message
        # And no run is left waiting
        task_runs = _assert_all_final(state.state_details.flow_run_id)
        failed = [run for run in task_runs if run.state.is_failed()]
        assert len(failed) == 1 and failed[0].state.name == "Failed"

    def test_an_unpicklable_exception_keeps_its_type_and_message(self, on_fleet):
        # When a task raises an exception that cannot be pickled
        state = unpicklable_exception(return_state=True)
        # Then its type and text still reach the flow and the store
        assert state.is_failed()
        assert "UnpicklableError: the disk is full" in str(state.result(raise_on_failure=False))
        (run,) = _assert_all_final(state.state_details.flow_run_id)
        assert "the disk is full" in run.state.message
        assert "could not be pickled" in run.state.message


class TestUnloadableContext:
    def test_a_flow_the_workers_cannot_load_fails_its_task_runs(self, on_fleet):
        # Given a flow that exists only in this process (as when a file was
        # edited after the workers imported it)
        def added_later():
            return identity.submit(1).result()

        added_later.__qualname__ = "added_later"
        module = sys.modules[__name__]
        module.added_later = flow(added_later)
        try:
            # When it runs a task on the workers
            state = module.added_later(return_state=True)
        finally:
            del module.added_later
        # Then the task run fails with the reason instead of staying Pending
        assert state.is_failed(), state
        (run,) = _assert_all_final(state.state_details.flow_run_id)
        assert "could not run task run" in run.state.message
        assert "added_later" in run.state.message
        assert "restart the workers" in run.state.message


SHORT_LEASE = {"CELERITY_LEASE_SECONDS": "1"}


class TestWrongSigningKey:
    def test_runs_whose_messages_are_rejected_fail_instead_of_waiting(
        self, own_redis, tmp_path, monkeypatch
    ):
        from workers.producer import submit_flow_run, wait_for_flow_run

        # Given a worker and a coordinator whose signing key differs from ours
        with running_fleet(
            own_redis.url,
            tmp_path / "fleet.log",
            workers=1,
            concurrency=1,
            pythonpath=[TESTS_DIR],
            env={"CELERITY_SIGNING_KEY": "not-the-key-of-the-sender", **SHORT_LEASE},
        ) as fleet:
            # The reaper resends a run nobody takes every 2 leases and gives
            # up after MAX_RESENDS sends: a short lease keeps that quick.
            use_broker(monkeypatch, own_redis.url, **SHORT_LEASE)
            # When a flow run here sends them a task run
            state = one_task(return_state=True)
            # Then the task run fails, saying which setting to check
            assert state.is_failed(), fleet.log_tail()
            assert "CELERITY_SIGNING_KEY" in str(state.result(raise_on_failure=False))
            _assert_all_final(state.state_details.flow_run_id)
            # And a submitted flow run fails the same way at the coordinator
            run_id = submit_flow_run(one_task)
            final = wait_for_flow_run(run_id, timeout=30)
            assert final.is_failed() and "CELERITY_SIGNING_KEY" in final.message


class TestRedisLostMidRun:
    @pytest.fixture
    def lease_fleet(self, own_redis, tmp_path, monkeypatch) -> Iterator[Fleet]:
        extra = {"CELERITY_LEASE_SECONDS": "1"}
        with running_fleet(
            own_redis.url,
            tmp_path / "fleet.log",
            workers=1,
            concurrency=1,
            pythonpath=[TESTS_DIR],
            env=extra,
        ) as fleet:
            use_broker(monkeypatch, own_redis.url, **extra)
            try:
                yield fleet
            finally:
                get_store().close()  # its connections met a dead server: close them here

    def _start_blocked_flow(self, url: str) -> tuple[threading.Thread, dict]:
        key = f"blocked-{time.monotonic_ns()}"
        outcome: dict = {}

        def target() -> None:
            try:
                outcome["state"] = blocked_on_a_worker(key, return_state=True)
            except BaseException as exc:  # reported by the test
                outcome["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        client = redis.Redis.from_url(url, socket_timeout=90)
        try:
            assert client.blpop([f"{key}:started"], timeout=60) is not None
        finally:
            client.close()
        return thread, outcome

    def test_a_dead_redis_ends_the_flow_run_in_bounded_time(self, own_redis, lease_fleet):
        from engine.exceptions import StoreUnavailable

        # Given a flow run waiting for a task run on a worker
        thread, outcome = self._start_blocked_flow(own_redis.url)
        # When Redis dies and stays down
        own_redis.kill()
        # Then the flow run gives up after a few lease periods with a clear error
        thread.join(FLOW_TIMEOUT_SECONDS)
        assert not thread.is_alive(), lease_fleet.log_tail()
        assert isinstance(outcome.get("error"), StoreUnavailable), outcome
        assert own_redis.url in str(outcome["error"])

    def test_a_redis_that_lost_its_data_ends_the_flow_run(self, own_redis, lease_fleet):
        from engine.exceptions import ObjectNotFound

        # Given a flow run waiting for a task run on a worker
        thread, outcome = self._start_blocked_flow(own_redis.url)
        # When Redis restarts empty (no persistence)
        own_redis.kill()
        own_redis.start()
        # Then the lost task run is noticed and the flow run ends
        thread.join(FLOW_TIMEOUT_SECONDS)
        assert not thread.is_alive(), lease_fleet.log_tail()
        assert isinstance(outcome.get("error"), ObjectNotFound), outcome
