"""Spec item 4: upstream resolution, wait_for, NotReady, allow_failure, quote."""

from engine import allow_failure, flow, quote, task
from engine.context import TaskRunContext
from engine.states import State, StateType

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import add, fail_task, identity, record_task, slow_record_task


@task
def record_run_and_id(key, value):
    record(key, ("ran", TaskRunContext.get().task_run.id.hex))
    return value


@task
def exception_receiver(upstream):
    return type(upstream).__name__, str(upstream)


@task
def quoted_receiver(payload):
    return type(payload).__name__, [type(item).__name__ for item in payload]


@flow
def nested_futures_flow():
    a = add.submit(1, 1)
    b = add.submit(2, 2)
    c = identity.submit("c")
    state = add(5, 5, return_state=True)
    return identity(
        {
            "list": [a, b],
            "tuple": (a, state),
            "dict": {"inner": b, "state": state},
            "set": {c},
            "deep": [{"x": (a,)}],
        }
    )


@flow
def wait_for_flow(key):
    first = slow_record_task.submit(key, 0.3, "first")
    second = record_task.submit(key, "second", wait_for=[first])
    return second.result()


@flow
def wait_for_direct_call_flow(key):
    first = slow_record_task.submit(key, 0.3, "first")
    return record_task(key, "second", wait_for=[first])


@flow
def not_ready_cascade_flow(key):
    failing = fail_task.submit("upstream broke")
    second = record_run_and_id.submit(key, failing)
    third = record_run_and_id.submit(key, second)
    third.wait()
    second.wait()
    return (
        second.task_run_id,
        second.state.type,
        second.state.name,
        third.task_run_id,
        third.state.type,
        third.state.name,
    )


@flow
def not_ready_wait_for_flow(key):
    failing = fail_task.submit("upstream broke")
    downstream = record_task.submit(key, "should not run", wait_for=[failing])
    downstream.wait()
    return downstream.task_run_id, downstream.state.name


@flow
def allow_failure_flow():
    failing = fail_task.submit("allowed failure")
    received = exception_receiver.submit(allow_failure(failing))
    return received.result(), received.task_run_id


@flow
def allow_failure_wait_for_flow(key):
    failing = fail_task.submit("allowed failure")
    downstream = record_task.submit(key, "ran anyway", wait_for=[allow_failure(failing)])
    return downstream.result()


@flow
def quote_flow():
    state = add(1, 2, return_state=True)
    return quoted_receiver(quote([state]))


@flow
def unquoted_flow():
    state = add(1, 2, return_state=True)
    return quoted_receiver([state])


class TestUpstreamResolution:
    def test_futures_and_states_nested_in_collections_resolve(self):
        assert nested_futures_flow() == {
            "list": [2, 4],
            "tuple": (2, 10),
            "dict": {"inner": 4, "state": 10},
            "set": {"c"},
            "deep": [{"x": (2,)}],
        }

    def test_state_argument_resolves_without_quote(self):
        assert unquoted_flow() == ("list", ["int"])


class TestWaitFor:
    def test_wait_for_orders_submitted_tasks_without_passing_data(self, key):
        assert wait_for_flow(key) == "second"
        assert recorded(key) == ["first", "second"]

    def test_wait_for_on_direct_call(self, key):
        assert wait_for_direct_call_flow(key) == "second"
        assert recorded(key) == ["first", "second"]


class TestNotReady:
    def test_failed_upstream_makes_downstream_not_ready_and_cascades(self, key):
        second_id, second_type, second_name, third_id, third_type, third_name = (
            not_ready_cascade_flow(key)
        )
        assert (second_type, second_name) == (StateType.PENDING, "NotReady")
        assert (third_type, third_name) == (StateType.PENDING, "NotReady")
        assert recorded(key) == []  # neither downstream ran
        for run_id in (second_id, third_id):
            names = h.names(run_id)
            assert names[-1] == "NotReady"
            assert "Running" not in names
            assert names[0] == "Pending"

    def test_failed_wait_for_upstream_makes_downstream_not_ready(self, key):
        task_run_id, name = not_ready_wait_for_flow(key)
        assert name == "NotReady"
        assert recorded(key) == []
        assert "Running" not in h.names(task_run_id)
        assert h.names(task_run_id)[-1] == "NotReady"


class TestAllowFailure:
    def test_allow_failure_passes_upstream_exception_as_value(self):
        (exc_name, exc_text), task_run_id = allow_failure_flow()
        assert exc_name == "ValueError"
        assert "allowed failure" in exc_text
        assert h.names(task_run_id) == ["Pending", "Running", "Completed"]

    def test_allow_failure_in_wait_for(self, key):
        assert allow_failure_wait_for_flow(key) == "ran anyway"
        assert recorded(key) == ["ran anyway"]


class TestQuote:
    def test_quote_passes_value_without_resolution(self):
        assert quote_flow() == ("list", [State.__name__])


@flow
def child_waiting(key):
    record(key, "child ran")
    return "child"


@flow
def subflow_wait_for_flow(key):
    failed = fail_task.submit()
    ok = add.submit(1, 1)
    blocked = child_waiting(key, wait_for=[failed], return_state=True)
    allowed = child_waiting(key, wait_for=[allow_failure(failed), ok], return_state=True)
    return (blocked.type.value, blocked.name), allowed.result()


class TestSubflowWaitFor:
    def test_a_subflow_waiting_for_a_failed_upstream_is_not_ready(self, key):
        # Given a subflow whose wait_for upstream failed, and one that allows the failure
        blocked, allowed = subflow_wait_for_flow(key)
        # Then the first never runs (Pending/NotReady) and the second runs
        assert blocked == ("PENDING", "NotReady")
        assert allowed == "child"
        assert recorded(key) == ["child ran"]
