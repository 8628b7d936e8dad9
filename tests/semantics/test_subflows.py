"""Spec item 8: subflows are child flow runs linked to a parent task run."""

import pytest

from engine import flow
from engine.context import FlowRunContext

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import add


@flow
def child_flow(key, x):
    ctx = FlowRunContext.get()
    record(key, ("child", ctx.flow_run.id.hex, str(ctx.flow_run.parent_task_run_id)))
    return add(x, 1)


@flow
def parent_flow(key):
    record(key, ("parent", FlowRunContext.get().flow_run.id.hex, None))
    return child_flow(key, 10) * 2


@flow
def failing_child_flow():
    raise ValueError("child failed")


@flow
def parent_not_catching_flow():
    failing_child_flow()
    return "unreachable"


@flow
def parent_inspecting_flow():
    state = failing_child_flow(return_state=True)
    return state.type.value, state.name, type(state.result(raise_on_failure=False)).__name__


@flow
def doubling_child(x: int):
    return x * 2


@flow
def parent_passing_a_future():
    future = add.submit(20, 1)
    return doubling_child(future)


@flow
def counted_child(key, x):
    record(f"{key}:child", x)
    return x + 100


@flow(retries=1)
def parent_failing_after_child(key):
    first = counted_child(key, 1)
    second_state = counted_child(key, 2, return_state=True)
    second = second_state.result()
    record(f"{key}:second-child-run", second_state.state_details.flow_run_id)
    record(f"{key}:parent", "attempt")
    if len(recorded(f"{key}:parent")) == 1:
        raise RuntimeError("the parent fails after its children completed")
    return first + second


@flow
def parent_catching_flow():
    try:
        failing_child_flow()
    except ValueError as exc:
        return f"caught {exc}"
    return "not raised"


class TestSubflows:
    def test_child_flow_run_linked_to_parent(self, key):
        assert parent_flow(key) == 22
        (parent_entry, child_entry) = recorded(key)
        assert parent_entry[0] == "parent" and child_entry[0] == "child"
        parent_id, child_id = parent_entry[1], child_entry[1]
        assert parent_id != child_id
        parent_task_run_id = child_entry[2]
        assert parent_task_run_id != "None"
        linking_task_run = h.task_run(parent_task_run_id)
        assert linking_task_run.flow_run_id.hex == parent_id
        assert h.flow_run(child_id).parent_task_run_id is not None
        assert h.names(child_id) == ["Pending", "Running", "Completed"]
        assert h.names(parent_id) == ["Pending", "Running", "Completed"]

    def test_uncaught_child_failure_fails_parent(self):
        state = parent_not_catching_flow(return_state=True)
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), ValueError)
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Failed"]
        with pytest.raises(ValueError, match="child failed"):
            parent_not_catching_flow()

    def test_parent_inspects_child_state(self):
        state = parent_inspecting_flow(return_state=True)
        assert state.is_completed()
        assert state.result() == ("FAILED", "Failed", "ValueError")

    def test_parent_catches_child_exception(self):
        assert parent_catching_flow() == "caught child failed"


class TestFuturesPassedToSubflows:
    def test_a_future_argument_becomes_its_value(self):
        # The child's ``x: int`` receives the upstream's value, not the future
        assert parent_passing_a_future() == 42


class TestFlowRetriesReuseChildFlows:
    def test_completed_child_flows_do_not_run_again(self, key):
        # Given a parent that fails after two child flow runs completed
        state = parent_failing_after_child(key, return_state=True)
        # When its retry runs, the children are reused, not run again
        assert state.is_completed(), state
        assert state.result() == 101 + 102
        assert recorded(f"{key}:child") == [1, 2]
        assert recorded(f"{key}:parent") == ["attempt", "attempt"]
        # The retry gets the child flow run's own final state, from the first attempt
        first_id, again_id = recorded(f"{key}:second-child-run")
        assert first_id == again_id
        assert h.names(first_id) == ["Pending", "Running", "Completed"]
        parent_id = state.state_details.flow_run_id
        children = [run for run in h.store().read_task_runs(parent_id)]
        assert len(children) == 2
        assert all(run.state.is_completed() for run in children)
