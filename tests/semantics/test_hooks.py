"""Spec items 1 and 7 (hooks): state-change hooks on tasks and flows."""

import logging

from engine import flow, task
from engine.states import Cancelled, Cancelling

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import (
    exploding_hook,
    flow_on_cancellation,
    flow_on_completion,
    flow_on_failure,
    flow_on_running,
    task_on_completion,
    task_on_failure,
    task_on_running,
)

TASK_HOOKS = {
    "on_completion": [task_on_completion],
    "on_failure": [task_on_failure],
    "on_running": [task_on_running],
}
FLOW_HOOKS = {
    "on_completion": [flow_on_completion],
    "on_failure": [flow_on_failure],
    "on_running": [flow_on_running],
    "on_cancellation": [flow_on_cancellation],
}


@task(name="hooked-ok", **TASK_HOOKS)
def hooked_ok_task():
    return "ok"


@task(name="hooked-bad", **TASK_HOOKS)
def hooked_bad_task():
    raise ValueError("hooked failure")


@task(name="exploding-hook-task", on_completion=[exploding_hook, task_on_completion])
def exploding_hook_task():
    return "still fine"


@flow
def task_hooks_flow():
    ok = hooked_ok_task(return_state=True)
    bad = hooked_bad_task(return_state=True)
    return ok.state_details.task_run_id, bad.state_details.task_run_id


@flow
def submitted_task_hooks_flow():
    future = hooked_ok_task.submit()
    future.wait()
    return future.task_run_id


@flow
def exploding_task_hook_flow():
    state = exploding_hook_task(return_state=True)
    return state.name, state.result(), state.state_details.task_run_id


@flow(name="hooked-ok-flow", **FLOW_HOOKS)
def hooked_ok_flow():
    return "ok"


@flow(name="hooked-bad-flow", **FLOW_HOOKS)
def hooked_bad_flow():
    raise ValueError("flow hook failure")


@flow(name="hooked-cancelled-flow", **FLOW_HOOKS)
def hooked_cancelled_flow():
    return Cancelled(message="cancelled by the flow itself")


@flow(name="hooked-cancelling-flow", **FLOW_HOOKS)
def hooked_cancelling_flow():
    return Cancelling(message="the flow asks to be cancelled")


@task(name="hooked-retried", retries=2, **TASK_HOOKS)
def hooked_retried_task(key):
    record(key, "attempt")
    if len(recorded(key)) < 3:
        raise ValueError("not yet")
    return "third time"


@flow
def retried_task_hooks_flow(key):
    state = hooked_retried_task(key, return_state=True)
    submitted = hooked_retried_task.submit(f"{key}:submitted")
    submitted.wait()
    return state.state_details.task_run_id, submitted.task_run_id


@flow(name="hooked-retried-flow", retries=1, **FLOW_HOOKS)
def hooked_retried_flow(key):
    record(key, "attempt")
    if len(recorded(key)) == 1:
        raise ValueError("first attempt fails")
    return "second attempt"


def commit_recorder(txn):
    record(f"commit:{txn.task_run_id}", type(txn).__name__)


@task(on_commit=[commit_recorder])
def committed_task():
    return "kept"


@flow
def commit_hook_flow():
    inline = committed_task(return_state=True)
    # The hooks run as the run's transaction ends, after its final state.
    return inline.name, inline.state_details.task_run_id


@flow(name="exploding-hook-flow", on_completion=[exploding_hook, flow_on_completion])
def exploding_hook_flow():
    return "flow still fine"


@flow(name="exploding-failure-hook-flow", on_failure=[exploding_hook])
def exploding_failure_hook_flow():
    raise KeyError("original failure")


class TestTaskHooks:
    def test_completion_and_failure_hooks(self):
        ok_id, bad_id = task_hooks_flow()
        assert recorded(f"hooks:{ok_id}") == [
            ("on_running", "hooked-ok", "Running"),
            ("on_completion", "hooked-ok", "Completed"),
        ]
        assert recorded(f"hooks:{bad_id}") == [
            ("on_running", "hooked-bad", "Running"),
            ("on_failure", "hooked-bad", "Failed"),
        ]
        assert h.names(ok_id) == ["Pending", "Running", "Completed"]
        assert h.names(bad_id) == ["Pending", "Running", "Failed"]

    def test_hooks_on_submitted_task(self):
        task_run_id = submitted_task_hooks_flow()
        assert recorded(f"hooks:{task_run_id}") == [
            ("on_running", "hooked-ok", "Running"),
            ("on_completion", "hooked-ok", "Completed"),
        ]

    def test_hook_error_is_logged_not_raised(self):
        state = exploding_task_hook_flow(return_state=True)
        assert state.is_completed()
        name, value, task_run_id = state.result()
        assert (name, value) == ("Completed", "still fine")
        assert recorded(f"hooks:{task_run_id}") == [
            ("exploding_hook", "Completed"),
            ("on_completion", "exploding-hook-task", "Completed"),
        ]
        assert h.names(task_run_id) == ["Pending", "Running", "Completed"]
        errors = [
            log
            for log in h.logs(state.state_details.flow_run_id)
            if log.level >= logging.ERROR and "exploding_hook" in log.message
        ]
        assert errors


class TestFlowHooks:
    def test_completion_hook(self):
        state = hooked_ok_flow(return_state=True)
        flow_run_id = state.state_details.flow_run_id
        assert recorded(f"hooks:{flow_run_id}") == [
            ("on_running", "hooked-ok-flow", "Running"),
            ("on_completion", "hooked-ok-flow", "Completed"),
        ]
        assert h.names(flow_run_id) == ["Pending", "Running", "Completed"]

    def test_failure_hook(self):
        state = hooked_bad_flow(return_state=True)
        flow_run_id = state.state_details.flow_run_id
        assert recorded(f"hooks:{flow_run_id}") == [
            ("on_running", "hooked-bad-flow", "Running"),
            ("on_failure", "hooked-bad-flow", "Failed"),
        ]
        assert h.names(flow_run_id) == ["Pending", "Running", "Failed"]

    def test_cancellation_hook(self):
        # Assumption: a flow that returns a Cancelled state ends Cancelled and
        # runs its on_cancellation hooks.
        state = hooked_cancelled_flow(return_state=True)
        assert state.is_cancelled()
        flow_run_id = state.state_details.flow_run_id
        assert recorded(f"hooks:{flow_run_id}") == [
            ("on_running", "hooked-cancelled-flow", "Running"),
            ("on_cancellation", "hooked-cancelled-flow", "CANCELLED"),
        ]
        assert h.names(flow_run_id)[:2] == ["Pending", "Running"]
        assert h.types(flow_run_id)[-1] == "CANCELLED"

    def test_hook_error_is_logged_not_raised(self):
        assert exploding_hook_flow() == "flow still fine"
        state = exploding_hook_flow(return_state=True)
        flow_run_id = state.state_details.flow_run_id
        assert state.is_completed()
        assert recorded(f"hooks:{flow_run_id}") == [
            ("exploding_hook", "Completed"),
            ("on_completion", "exploding-hook-flow", "Completed"),
        ]
        assert h.names(flow_run_id) == ["Pending", "Running", "Completed"]
        assert any(
            log.level >= logging.ERROR and "exploding_hook" in log.message
            for log in h.logs(flow_run_id)
        )

    def test_failure_hook_error_keeps_original_failure(self):
        state = exploding_failure_hook_flow(return_state=True)
        assert state.is_failed()
        assert isinstance(state.result(raise_on_failure=False), KeyError)
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Failed"]


class TestHooksOnEveryAttempt:
    def test_task_on_running_hooks_fire_for_each_attempt(self, key):
        # Given a task that fails twice, then completes (inline and submitted)
        inline_id, submitted_id = retried_task_hooks_flow(key)
        # Then its on_running hooks ran once per attempt, completion once
        for run_id in (inline_id, submitted_id):
            assert recorded(f"hooks:{run_id}") == [
                ("on_running", "hooked-retried", "Running"),
                ("on_running", "hooked-retried", "Retrying"),
                ("on_running", "hooked-retried", "Retrying"),
                ("on_completion", "hooked-retried", "Completed"),
            ]

    def test_flow_on_running_hooks_fire_for_each_attempt(self, key):
        state = hooked_retried_flow(key, return_state=True)
        assert state.result() == "second attempt"
        assert recorded(f"hooks:{state.state_details.flow_run_id}") == [
            ("on_running", "hooked-retried-flow", "Running"),
            ("on_running", "hooked-retried-flow", "Retrying"),
            ("on_completion", "hooked-retried-flow", "Completed"),
        ]


class TestCancellationHooks:
    def test_a_flow_returning_cancelling_runs_its_cancellation_hooks(self):
        state = hooked_cancelling_flow(return_state=True)
        assert state.is_cancelling()
        assert recorded(f"hooks:{state.state_details.flow_run_id}") == [
            ("on_running", "hooked-cancelling-flow", "Running"),
            ("on_cancellation", "hooked-cancelling-flow", "CANCELLING"),
        ]


class TestCommitHooksOutsideTransactions:
    def test_a_completed_task_runs_its_commit_hooks(self):
        # A task run is its own transaction when its task has commit hooks
        name, run_id = commit_hook_flow()
        assert name == "Completed"
        assert recorded(f"commit:{run_id}") == ["Transaction"]
