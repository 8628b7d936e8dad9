"""Spec item 6: how a flow's final state is derived from what it returns."""

import pytest

from engine import flow
from engine.states import Completed, Failed, State

from . import _helpers as h
from ._tasks import add, fail_task


@flow
def raises_flow():
    raise RuntimeError("raised in flow")


@flow
def value_flow():
    return [1, "two", {"three": 3}]


@flow
def one_of_two_failed_flow():
    return [add.submit(1, 1), fail_task.submit("one failed")]


@flow
def all_completed_futures_flow():
    return [add.submit(1, 1), add.submit(2, 2)]


@flow
def single_failed_future_flow():
    return fail_task.submit("single failed")


@flow
def single_completed_future_flow():
    return add.submit(20, 22)


@flow
def states_flow_one_failed():
    return [add(1, 1, return_state=True), fail_task("state failed", return_state=True)]


@flow
def returns_failed_state_flow():
    return Failed(message="explicitly failed")


@flow
def returns_completed_state_flow():
    return Completed(data="explicit value")


@flow
def failed_future_not_returned_flow():
    fail_task.submit("ignored failure").wait()
    return "fine"


class TestFinalFlowState:
    def test_exception_makes_flow_failed(self):
        state = raises_flow(return_state=True)
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), RuntimeError)
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Failed"]

    def test_plain_value_completes(self):
        state = value_flow(return_state=True)
        assert state.is_completed()
        assert state.result() == [1, "two", {"three": 3}]
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Completed"]

    def test_returned_futures_one_failed(self):
        state = one_of_two_failed_flow(return_state=True)
        assert state.is_failed()
        assert "1/2 states failed" in state.message
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Failed"]

    def test_returned_futures_one_failed_raises_when_called(self):
        with pytest.raises(ValueError, match="one failed"):
            one_of_two_failed_flow()

    def test_returned_states_one_failed(self):
        state = states_flow_one_failed(return_state=True)
        assert state.is_failed()
        assert "1/2 states failed" in state.message

    def test_returned_completed_futures_give_their_states(self):
        # As in the seed API: the caller gets the task runs' states, not values
        returned = all_completed_futures_flow()
        assert all(isinstance(item, State) and item.is_completed() for item in returned)
        assert [item.result() for item in returned] == [2, 4]
        state = all_completed_futures_flow(return_state=True)
        assert state.is_completed()
        assert state.message == "All states completed."
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Completed"]

    def test_single_returned_future(self):
        returned = single_completed_future_flow()
        assert isinstance(returned, State) and returned.result() == 42
        state = single_failed_future_flow(return_state=True)
        assert state.is_failed()
        with pytest.raises(ValueError, match="single failed"):
            single_failed_future_flow()

    def test_returned_state_is_used(self):
        failed = returns_failed_state_flow(return_state=True)
        assert failed.is_failed()
        assert failed.message == "explicitly failed"
        assert h.names(failed.state_details.flow_run_id)[-1] == "Failed"
        assert returns_completed_state_flow() == "explicit value"

    def test_unreturned_failed_future_does_not_fail_flow(self):
        state = failed_future_not_returned_flow(return_state=True)
        assert state.is_completed()
        assert state.result() == "fine"
