"""Spec item 7 (timeouts): sync and async tasks and flows end Failed/"TimedOut"."""

import asyncio
import time

import pytest

from engine import flow, task
from engine.states import StateType

from . import _helpers as h
from ._side_effects import record, recorded


def _sleep_ten_seconds():
    # Simulated long work in short slices so any interruption mechanism can land.
    for _ in range(1000):
        time.sleep(0.01)
    return "finished"


@task(timeout_seconds=0.5)
def sync_sleepy_task():
    return _sleep_ten_seconds()


@task(timeout_seconds=0.5)
async def async_sleepy_task():
    await asyncio.sleep(10)
    return "finished"


@task(timeout_seconds=5)
def quick_task_with_timeout():
    return "quick"


@flow
def sync_task_timeout_flow():
    state = sync_sleepy_task(return_state=True)
    return state.type, state.name, state.state_details.task_run_id


@flow
def sync_task_timeout_raises_flow():
    try:
        sync_sleepy_task()
    except TimeoutError as exc:
        return type(exc).__name__
    return "no timeout"


@flow
def submitted_task_timeout_flow():
    future = sync_sleepy_task.submit()
    future.wait()
    return future.state.name, future.task_run_id


@flow
async def async_task_timeout_flow():
    state = await async_sleepy_task(return_state=True)
    return state.type, state.name, state.state_details.task_run_id


@flow
def quick_timeout_flow():
    return quick_task_with_timeout()


@flow(timeout_seconds=0.5)
def sync_sleepy_flow():
    return _sleep_ten_seconds()


@flow(timeout_seconds=0.5)
async def async_sleepy_flow():
    await asyncio.sleep(10)
    return "finished"


@flow(timeout_seconds=0.5, retries=1)
def slow_first_attempt_flow(key):
    record(key, "attempt")
    if len(recorded(key)) == 1:
        _sleep_ten_seconds()
    return "second attempt in time"


class TestTaskTimeouts:
    def test_sync_task_times_out(self):
        started = time.monotonic()
        state_type, name, task_run_id = sync_task_timeout_flow()
        assert time.monotonic() - started < 5
        assert state_type == StateType.FAILED
        assert name == "TimedOut"
        assert h.names(task_run_id) == ["Pending", "Running", "TimedOut"]

    def test_sync_task_timeout_raises_timeout_error(self):
        started = time.monotonic()
        assert sync_task_timeout_raises_flow() != "no timeout"
        assert time.monotonic() - started < 5

    def test_submitted_task_times_out(self):
        started = time.monotonic()
        name, task_run_id = submitted_task_timeout_flow()
        assert time.monotonic() - started < 5
        assert name == "TimedOut"
        assert h.names(task_run_id) == ["Pending", "Running", "TimedOut"]

    def test_async_task_times_out(self):
        started = time.monotonic()
        state_type, name, task_run_id = asyncio.run(async_task_timeout_flow())
        assert time.monotonic() - started < 5
        assert state_type == StateType.FAILED
        assert name == "TimedOut"
        assert h.names(task_run_id) == ["Pending", "Running", "TimedOut"]

    def test_task_within_timeout_completes(self):
        assert quick_timeout_flow() == "quick"


class TestFlowTimeouts:
    def test_sync_flow_times_out(self):
        started = time.monotonic()
        state = sync_sleepy_flow(return_state=True)
        assert time.monotonic() - started < 5
        assert state.type == StateType.FAILED
        assert state.name == "TimedOut"
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "TimedOut"]

    def test_sync_flow_timeout_raises_timeout_error(self):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            sync_sleepy_flow()
        assert time.monotonic() - started < 5

    def test_async_flow_times_out(self):
        started = time.monotonic()
        state = asyncio.run(async_sleepy_flow(return_state=True))
        assert time.monotonic() - started < 5
        assert state.type == StateType.FAILED
        assert state.name == "TimedOut"
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "TimedOut"]

    def test_a_timed_out_flow_attempt_is_retried(self, key):
        # A flow run that times out is Failed (TimedOut), which its retries cover
        state = slow_first_attempt_flow(key, return_state=True)
        assert state.result() == "second attempt in time"
        assert recorded(key) == ["attempt", "attempt"]
        assert h.names(state.state_details.flow_run_id) == [
            "Pending", "Running", "Retrying", "Completed",
        ]
