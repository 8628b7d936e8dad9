"""The run engines' public surface, as ported code calls it: the engine classes,
``run_task_sync`` / ``run_task_async`` / ``run_flow*`` with optional parameters
and ``return_type``, and the hooks an engine calls for a given state."""

import asyncio
import uuid

import pytest

from engine import flow, task
from engine.context import TaskRunContext
from engine.flow_engine import (
    AsyncFlowRunEngine,
    FlowRunEngine,
    run_flow,
    run_flow_async,
    run_flow_sync,
)
from engine.states import Cancelling, Completed, Crashed, Running, State
from engine.store import get_store
from engine.task_engine import (
    AsyncTaskRunEngine,
    SyncTaskRunEngine,
    run_task,
    run_task_async,
    run_task_sync,
)


@task
def answer():
    return 42


@task
def add(x, y=10):
    return x + y


@task
async def async_add(x, y=10):
    return x + y


@task
def current_run_id():
    return TaskRunContext.get().task_run.id


@flow
def greet(name="world"):
    return f"hello {name}"


@flow
async def async_greet(name="world"):
    return f"hi {name}"


class TestRunTaskWithoutParameters:
    def test_run_task_sync_needs_no_parameters(self):
        assert run_task_sync(answer) == 42

    def test_parameters_by_keyword(self):
        assert run_task_sync(add, parameters={"x": 1}) == 11
        assert run_task_sync(add, parameters={"x": 1, "y": 2}) == 3

    def test_return_type_state(self):
        state = run_task_sync(add, parameters={"x": 1}, return_type="state")
        assert isinstance(state, State) and state.is_completed()
        assert state.result() == 11

    def test_a_given_task_run_id_names_the_run(self):
        run_id = uuid.uuid4()
        assert run_task_sync(current_run_id, task_run_id=run_id) == run_id
        assert get_store().read_task_run(run_id).state.is_completed()

    def test_run_task_async(self):
        assert asyncio.run(run_task_async(async_add, parameters={"x": 5})) == 15
        state = asyncio.run(run_task_async(async_add, parameters={"x": 5}, return_type="state"))
        assert state.is_completed()

    def test_run_task_picks_the_driver(self):
        assert run_task(add, parameters={"x": 2}) == 12
        assert run_task(async_add, parameters={"x": 2}) == 12


class TestRunFlowWithoutParameters:
    def test_run_flow_sync_needs_no_parameters(self):
        assert run_flow_sync(greet) == "hello world"
        assert run_flow_sync(greet, parameters={"name": "you"}) == "hello you"

    def test_run_flow_async(self):
        assert asyncio.run(run_flow_async(async_greet)) == "hi world"

    def test_run_flow_returns_a_coroutine_for_async_flows(self):
        assert asyncio.run(run_flow(async_greet, parameters={"name": "x"})) == "hi x"

    def test_return_type_state(self):
        state = run_flow(greet, return_type="state")
        assert state.is_completed() and state.result() == "hello world"


class TestTaskRunEngines:
    def test_basic_init(self):
        engine = SyncTaskRunEngine(task=answer)
        assert engine.task is answer
        assert engine.parameters == {}

    def test_set_state_inside_initialize_run(self):
        engine = SyncTaskRunEngine(task=answer)
        with engine.initialize_run():
            running = Running()
            assert engine.set_state(running) == running
            completed = Completed()
            assert engine.set_state(completed) == completed
        history = get_store().read_state_history(engine.task_run.id)
        assert [s.name for s in history] == ["Pending", "Running", "Completed"]

    def test_a_state_made_in_the_same_tick_comes_later(self):
        engine = SyncTaskRunEngine(task=answer)
        with engine.initialize_run():
            running = Running()
            completed = Completed()
            completed.timestamp = running.timestamp
            engine.set_state(running)
            assert engine.set_state(completed).timestamp > running.timestamp

    def test_async_engine(self):
        async def drive():
            engine = AsyncTaskRunEngine(task=answer)
            async with engine.initialize_run():
                running = Running()
                return await engine.set_state(running) == running

        assert asyncio.run(drive())

    def test_an_interrupt_while_beginning_crashes_the_run(self, monkeypatch):
        def interrupted(self):
            raise KeyboardInterrupt

        monkeypatch.setattr(SyncTaskRunEngine, "begin_run", interrupted)
        run_id = uuid.uuid4()
        with pytest.raises(KeyboardInterrupt):
            run_task_sync(answer, task_run_id=run_id)
        assert get_store().read_task_run(run_id).state.is_crashed()


def _record_hook(calls, label):
    def hook(flw, flow_run, state):
        calls.append((label, state.name))

    return hook


class TestFlowRunEngines:
    def test_call_hooks_picks_hooks_by_state(self):
        calls = []
        hooked = greet.with_options(
            on_cancellation=[_record_hook(calls, "cancel")],
            on_crashed=[_record_hook(calls, "crash")],
        )
        engine = FlowRunEngine(flow=hooked)
        engine.call_hooks(Cancelling())
        engine.call_hooks(Crashed(message="boom"))
        assert calls == [("cancel", "Cancelling"), ("crash", "Crashed")]

    def test_async_engine_call_hooks(self):
        calls = []
        hooked = async_greet.with_options(on_cancellation=[_record_hook(calls, "cancel")])
        asyncio.run(AsyncFlowRunEngine(flow=hooked).call_hooks(Cancelling()))
        assert calls == [("cancel", "Cancelling")]

    def test_handle_cancellation_ends_the_run_cancelled_and_runs_its_hooks(self):
        calls = []
        hooked = greet.with_options(on_cancellation=[_record_hook(calls, "cancel")])
        engine = FlowRunEngine(flow=hooked)
        with engine.initialize_run():
            engine.handle_cancellation(KeyboardInterrupt())
        history = get_store().read_state_history(engine.flow_run.id)
        assert [s.name for s in history] == ["Pending", "Cancelling", "Cancelled"]
        assert calls == [("cancel", "Cancelled")]

    def test_a_returned_coroutine_is_awaited_by_an_async_flow(self):
        @flow
        async def returns_coroutine():
            return async_add(1)  # not awaited by the flow's code

        assert asyncio.run(returns_coroutine()) == 11
