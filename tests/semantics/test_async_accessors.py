"""Issue 8, behaviour 2: result accessors return an awaitable in async code.

``state.result()``, ``get_state_exception`` and ``raise_state_exception`` hand
an async caller a coroutine (``await state.result()``) and a sync caller the
value, decided by the run the code belongs to: code in a sync task stays sync
even inside an async flow. ``aresult()`` is always awaitable; ``_sync=``
forces either side.
"""

import asyncio
import inspect

import pytest

from engine import flow, task
from engine.states import (
    Completed,
    Failed,
    State,
    get_state_exception,
    raise_state_exception,
)

from ._tasks import add, fail_task


@task
def sync_reads_a_state(value):
    # A sync task gets the value even when an async flow's loop is running.
    return Completed(data=value).result()


@task
async def async_reads_a_state(value):
    return await Completed(data=value).result()


@flow
async def awaits_task_states():
    ok = add(2, 3, return_state=True)
    bad = fail_task("nope", return_state=True)
    value = await ok.result()
    also = await ok.aresult()
    error = await bad.result(raise_on_failure=False)
    explained = await get_state_exception(bad)
    try:
        await raise_state_exception(bad)
    except ValueError as exc:
        raised = str(exc)
    return value, also, type(error).__name__, str(explained), raised


@flow
async def reads_in_tasks_of_an_async_flow():
    return sync_reads_a_state(7), await async_reads_a_state(8)


@flow
async def future_result_in_async_flow():
    # A future's result() is the value in async code too, as in the seed API.
    return add.submit(1, 1).result()


@flow
def sync_flow_reads_states():
    ok = add(1, 2, return_state=True)
    return ok.result(), raise_state_exception(ok)


class TestAsyncCallers:
    def test_async_flow_awaits_task_states(self):
        value, also, error, explained, raised = asyncio.run(awaits_task_states())
        assert (value, also) == (5, 5)
        assert error == "ValueError"
        assert explained == "nope"
        assert raised == "nope"

    def test_tasks_in_an_async_flow_follow_their_own_kind(self):
        assert asyncio.run(reads_in_tasks_of_an_async_flow()) == (7, 8)

    def test_future_result_stays_sync_in_async_flow(self):
        assert asyncio.run(future_result_in_async_flow()) == 2

    def test_awaiting_a_returned_flow_state(self):
        async def caller():
            state = await awaits_task_states(return_state=True)
            return state, await state.result()

        state, value = asyncio.run(caller())
        assert state.is_completed()
        assert value[0] == 5

    def test_sync_flow_gets_values(self):
        assert sync_flow_reads_states() == (3, None)


class TestOutsideRuns:
    def test_sync_caller_gets_the_value(self):
        assert Completed(data=1).result() == 1

    def test_async_caller_gets_a_coroutine(self):
        async def caller():
            pending = Completed(data=1).result()
            assert inspect.iscoroutine(pending)
            return await pending

        assert asyncio.run(caller()) == 1

    def test_aresult_is_always_awaitable(self):
        assert asyncio.run(Completed(data="x").aresult()) == "x"

    def test_sync_flag_forces_the_value_in_async_code(self):
        async def caller():
            return Completed(data=2).result(_sync=True)

        assert asyncio.run(caller()) == 2

    def test_sync_false_forces_a_coroutine_in_sync_code(self):
        pending = Completed(data=3).result(_sync=False)
        assert inspect.iscoroutine(pending)
        assert asyncio.run(pending) == 3

    def test_awaited_failure_raises(self):
        async def caller():
            await Failed(data=KeyError("k")).result()

        with pytest.raises(KeyError):
            asyncio.run(caller())

    def test_awaited_raise_state_exception_on_completed_is_none(self):
        async def caller():
            return await raise_state_exception(Completed())

        assert asyncio.run(caller()) is None

    def test_dispatched_names_expose_their_async_twin(self):
        assert inspect.iscoroutinefunction(State.result.aio)
        assert inspect.iscoroutinefunction(get_state_exception.aio)
