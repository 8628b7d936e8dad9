"""Spec item 3: submit, map, futures, wait and as_completed."""

import asyncio
import functools
import threading
import time

import pytest

from engine import as_completed, flow, task, unmapped, wait
from engine.exceptions import MappingLengthMismatch

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import add, fail_task, identity, slow_task

# Callbacks run in the caller's process; an Event lets the test wait for one
# without sleeping.
_callback_events: dict[str, threading.Event] = {}


def done_callback(key, future):
    record(key, (str(future.task_run_id), future.state.name))
    _callback_events[key].set()


@task
async def async_square(x):
    await asyncio.sleep(0)
    return x * x


@flow
def submit_returns_at_once_flow():
    started = time.monotonic()
    future = slow_task.submit(1.0, "slow-value")
    submit_elapsed = time.monotonic() - started
    final_at_submit = future.state.is_final()
    value = future.result()
    return submit_elapsed, final_at_submit, value, future.task_run_id, future.state.name


@flow
def result_timeout_flow():
    future = slow_task.submit(1.0, "late")
    try:
        future.result(timeout=0.05)
        outcome = "no timeout"
    except TimeoutError:
        outcome = "timeout"
    return outcome, future.result()


@flow
def failed_future_flow():
    future = fail_task.submit("future failure")
    exc = future.result(raise_on_failure=False)
    try:
        future.result()
        raised = None
    except ValueError as err:
        raised = str(err)
    return type(exc).__name__, str(exc), raised, future.state.name, future.task_run_id


@flow
def future_wait_flow():
    future = slow_task.submit(1.0, "v")
    returned = future.wait(0.05)
    final_after_short_wait = future.state.is_final()
    future.wait()
    return returned, final_after_short_wait, future.state.name, future.state.result()


@flow
def done_callback_flow(key):
    future = add.submit(1, 2)
    future.add_done_callback(functools.partial(done_callback, key))
    return future.result(), str(future.task_run_id)


@flow
def module_wait_flow():
    fast = identity.submit("fast")
    slow = slow_task.submit(1.5, "slow")
    first = wait([fast, slow], timeout=0.5)
    first_done = {f.task_run_id for f in first.done}
    first_not_done = {f.task_run_id for f in first.not_done}
    second = wait([fast, slow])
    return (
        fast.task_run_id,
        slow.task_run_id,
        first_done,
        first_not_done,
        {f.task_run_id for f in second.done},
        len(second.not_done),
    )


@flow
def as_completed_flow():
    futures = [
        slow_task.submit(1.0, "slowest"),
        slow_task.submit(0.0, "fastest"),
        slow_task.submit(0.5, "middle"),
    ]
    return [f.result() for f in as_completed(futures)]


@flow
def as_completed_timeout_flow():
    futures = [slow_task.submit(1.0, "late")]
    try:
        list(as_completed(futures, timeout=0.1))
        outcome = "no timeout"
    except TimeoutError:
        outcome = "timeout"
    futures[0].wait()
    return outcome


@flow
def as_completed_many_flow():
    futures = add.map(range(20), 1)
    return sorted(f.result() for f in as_completed(futures))


@flow
def map_flow():
    futures = add.map([1, 2, 3], [10, 20, 30])
    futures.wait()
    return (
        futures.result(),
        [f.result() for f in futures],
        [f.task_run_id for f in futures],
        isinstance(futures, list),
    )


@flow
def map_unmapped_flow():
    return add.map([1, 2, 3], unmapped(100)).result()


@flow
def map_unmapped_list_flow():
    # unmapped() broadcasts an iterable instead of mapping over it
    return add.map([[1], [2]], unmapped([9])).result()


@flow
def map_scalar_broadcast_flow():
    return add.map([1, 2, 3], 5).result()


@flow
def map_keyword_flow():
    return add.map(x=[1, 2], y=[3, 4]).result()


@flow
def map_mismatch_flow():
    return add.map([1, 2, 3], [1, 2]).result()


@flow
def map_hundred_flow():
    futures = identity.map(range(100))
    return futures.result(), [f.task_run_id for f in futures[:3]]


@flow
async def async_submit_flow():
    futures = [async_square.submit(i) for i in range(4)]
    single = async_square.submit(9)
    return [f.result() for f in futures], single.result(), single.task_run_id


class TestSubmit:
    def test_submit_returns_future_at_once(self):
        elapsed, final_at_submit, value, task_run_id, state_name = submit_returns_at_once_flow()
        assert elapsed < 0.5
        assert final_at_submit is False
        assert value == "slow-value"
        assert state_name == "Completed"
        assert h.names(task_run_id) == ["Pending", "Running", "Completed"]

    def test_submit_outside_flow_raises_runtime_error(self):
        with pytest.raises(RuntimeError):
            add.submit(1, 2)

    def test_async_tasks_submitted_from_async_flow(self):
        values, single, task_run_id = asyncio.run(async_submit_flow())
        assert values == [0, 1, 4, 9]
        assert single == 81
        assert h.names(task_run_id) == ["Pending", "Running", "Completed"]


class TestFutureResult:
    def test_result_timeout_raises_timeout_error(self):
        assert result_timeout_flow() == ("timeout", "late")

    def test_result_of_failed_future(self):
        exc_name, exc_text, raised, state_name, task_run_id = failed_future_flow()
        assert exc_name == "ValueError"
        assert "future failure" in exc_text
        assert raised is not None and "future failure" in raised
        assert state_name == "Failed"
        assert h.names(task_run_id) == ["Pending", "Running", "Failed"]


class TestFutureWait:
    def test_wait_with_timeout_then_without(self):
        returned, final_after_short_wait, state_name, value = future_wait_flow()
        assert returned is None
        assert final_after_short_wait is False
        assert state_name == "Completed"
        assert value == "v"


class TestDoneCallback:
    def test_callback_receives_the_future(self, key):
        _callback_events[key] = threading.Event()
        try:
            value, task_run_id = done_callback_flow(key)
            assert _callback_events[key].wait(10)
        finally:
            _callback_events.pop(key, None)
        assert value == 3
        assert recorded(key) == [(task_run_id, "Completed")]


class TestModuleWait:
    def test_wait_returns_done_and_not_done(self):
        fast_id, slow_id, first_done, first_not_done, second_done, second_not_done = (
            module_wait_flow()
        )
        assert first_done == {fast_id}
        assert first_not_done == {slow_id}
        assert second_done == {fast_id, slow_id}
        assert second_not_done == 0


class TestAsCompleted:
    def test_as_completed_yields_all_in_completion_order(self):
        assert as_completed_flow() == ["fastest", "middle", "slowest"]

    def test_as_completed_yields_every_future(self):
        assert as_completed_many_flow() == list(range(1, 21))

    def test_as_completed_timeout(self):
        assert as_completed_timeout_flow() == "timeout"


class TestMap:
    def test_map_over_iterables(self):
        listed, individually, task_run_ids, is_list = map_flow()
        assert listed == [11, 22, 33]
        assert individually == [11, 22, 33]
        assert is_list
        assert len(set(task_run_ids)) == 3
        for task_run_id in task_run_ids:
            assert h.names(task_run_id) == ["Pending", "Running", "Completed"]

    def test_unmapped_broadcasts(self):
        assert map_unmapped_flow() == [101, 102, 103]

    def test_unmapped_iterable_is_not_mapped(self):
        assert map_unmapped_list_flow() == [[1, 9], [2, 9]]

    def test_non_iterable_broadcasts(self):
        assert map_scalar_broadcast_flow() == [6, 7, 8]

    def test_map_with_keyword_iterables(self):
        assert map_keyword_flow() == [4, 6]

    def test_length_mismatch_is_a_clear_error(self):
        with pytest.raises(MappingLengthMismatch):
            map_mismatch_flow()

    def test_map_hundred_items(self):
        values, some_ids = map_hundred_flow()
        assert values == list(range(100))
        for task_run_id in some_ids:
            assert h.names(task_run_id) == ["Pending", "Running", "Completed"]
