"""Spec item 2: calling tasks and flows directly; return_state; bind errors."""

import asyncio
import inspect

import pytest

from engine import flow, task
from engine.states import State, StateType

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import add, fail_task


@task
def needs_two(alpha, beta_value):
    return alpha + beta_value


@flow
def needs_two_flow(alpha, beta_value):
    return alpha * beta_value


@flow
def direct_call_flow(key):
    value = add(1, 2)
    record(key, value)
    return value


@flow
def raising_task_flow():
    try:
        fail_task("inline failure")
    except ValueError as exc:
        return f"caught: {exc}"
    return "not raised"


@flow
def return_state_flow():
    ok = add(2, 3, return_state=True)
    bad = fail_task("bad", return_state=True)
    return (
        isinstance(ok, State),
        ok.type,
        ok.name,
        ok.result(),
        ok.state_details.task_run_id,
        bad.type,
        bad.name,
        type(bad.result(raise_on_failure=False)).__name__,
        bad.state_details.task_run_id,
    )


@flow
def plain_value_flow(x):
    return {"doubled": x * 2}


@flow
def raising_flow():
    raise KeyError("flow exploded")


@flow
async def async_value_flow(x):
    await asyncio.sleep(0)
    return x + 1


@flow
def bind_error_in_flow():
    try:
        needs_two(1)
    except TypeError as exc:
        return str(exc)
    return "no error"


class TestDirectTaskCalls:
    def test_task_called_in_flow_runs_inline_and_returns_value(self, key):
        assert direct_call_flow(key) == 3
        assert recorded(key) == [3]

    def test_task_called_outside_flow_returns_value(self):
        assert add(4, 5) == 9

    def test_task_called_outside_flow_raises(self):
        with pytest.raises(ValueError, match="outside failure"):
            fail_task("outside failure")

    def test_task_exception_raised_to_caller_inside_flow(self):
        assert raising_task_flow() == "caught: inline failure"

    def test_return_state_inside_flow(self):
        (is_state, ok_type, ok_name, ok_value, ok_id, bad_type, bad_name, exc_name, bad_id) = (
            return_state_flow()
        )
        assert is_state
        assert ok_type == StateType.COMPLETED
        assert ok_name == "Completed"
        assert ok_value == 5
        assert bad_type == StateType.FAILED
        assert bad_name == "Failed"
        assert exc_name == "ValueError"
        assert h.names(ok_id) == ["Pending", "Running", "Completed"]
        assert h.names(bad_id) == ["Pending", "Running", "Failed"]

    def test_return_state_outside_flow(self):
        state = add(1, 1, return_state=True)
        assert isinstance(state, State)
        assert state.is_completed()
        assert state.result() == 2
        assert h.names(state.state_details.task_run_id) == ["Pending", "Running", "Completed"]

    def test_failed_return_state_outside_flow_does_not_raise(self):
        state = fail_task("quiet", return_state=True)
        assert state.is_failed()
        exc = state.result(raise_on_failure=False)
        assert isinstance(exc, ValueError)
        assert "quiet" in str(exc)
        assert h.names(state.state_details.task_run_id) == ["Pending", "Running", "Failed"]


class TestDirectFlowCalls:
    def test_flow_call_returns_value(self):
        assert plain_value_flow(4) == {"doubled": 8}

    def test_flow_call_raises_flow_exception(self):
        with pytest.raises(KeyError, match="flow exploded"):
            raising_flow()

    def test_flow_return_state(self):
        state = plain_value_flow(3, return_state=True)
        assert isinstance(state, State)
        assert state.is_completed()
        assert state.result() == {"doubled": 6}
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Completed"]

    def test_failed_flow_return_state(self):
        state = raising_flow(return_state=True)
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), KeyError)
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Failed"]

    def test_async_flow_returns_coroutine(self):
        coro = async_value_flow(1)
        assert inspect.iscoroutine(coro)
        assert asyncio.run(coro) == 2

    def test_async_flow_return_state(self):
        state = asyncio.run(async_value_flow(1, return_state=True))
        assert state.is_completed()
        assert state.result() == 2
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Completed"]

    def test_sync_flow_called_from_async_code_returns_its_value(self):
        async def caller():
            value = plain_value_flow(5)
            state = plain_value_flow(5, return_state=True)
            return value, await state.result()  # a State's result is awaitable here

        assert asyncio.run(caller()) == ({"doubled": 10}, {"doubled": 10})

    def test_async_flow_awaited_from_async_code(self):
        async def caller():
            return await async_value_flow(1), await async_value_flow(2)

        assert asyncio.run(caller()) == (2, 3)


class TestWrongArguments:
    def test_task_missing_argument_names_parameter(self):
        with pytest.raises(TypeError, match="beta_value"):
            needs_two(1)

    def test_task_unexpected_keyword_names_parameter(self):
        with pytest.raises(TypeError, match="gamma_extra"):
            needs_two(1, 2, gamma_extra=3)

    def test_flow_missing_argument_names_parameter(self):
        with pytest.raises(TypeError, match="beta_value"):
            needs_two_flow(1)

    def test_flow_unexpected_keyword_names_parameter(self):
        with pytest.raises(TypeError, match="gamma_extra"):
            needs_two_flow(1, 2, gamma_extra=3)

    def test_bind_error_is_engine_parameter_bind_error(self):
        from engine.exceptions import ParameterBindError

        with pytest.raises(ParameterBindError, match="beta_value"):
            needs_two_flow(alpha=1)

    def test_bind_error_shows_signature_and_received_arguments(self):
        with pytest.raises(TypeError) as info:
            needs_two_flow(1, gamma_extra=3)
        assert str(info.value).endswith(
            "Function 'needs_two_flow' has signature 'alpha, beta_value'"
            " but received args: (1,) and kwargs: ['gamma_extra']."
        )

    def test_task_bind_error_inside_flow(self):
        assert "beta_value" in bind_error_in_flow()
