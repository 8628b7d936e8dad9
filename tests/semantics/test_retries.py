"""Spec item 7 (retries): counts, delays, jitter, retry_condition_fn, flow retries."""

import time

from engine import flow, task
from engine.context import TaskRunContext
from engine.states import Failed
from engine.tasks import exponential_backoff

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import flaky, flaky_body


def never_retry(tsk, task_run, state):
    record(f"cond:{task_run.id}", (tsk.name, state.type.value))
    return False


def retry_only_value_errors(tsk, task_run, state):
    exc = state.result(raise_on_failure=False)
    record(f"cond:{task_run.id}", type(exc).__name__)
    return isinstance(exc, ValueError)


def fixed_delays(retries):
    return [0.15] * retries


@task(retries=2)
def counting_retries(key):
    record(f"{key}:run_count", TaskRunContext.get().task_run.run_count)
    return flaky_body(key, 2)


@task(retries=3)
def type_error_then_value_error(key):
    record(key, "attempt")
    raise TypeError("not retriable")


flaky_no_delay = flaky.with_options(retries=2)
flaky_number_delay = flaky.with_options(retries=1, retry_delay_seconds=0.3)
flaky_list_delay = flaky.with_options(retries=2, retry_delay_seconds=[0.1, 0.3])
flaky_callable_delay = flaky.with_options(retries=2, retry_delay_seconds=fixed_delays)
flaky_backoff = flaky.with_options(
    retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=0.1)
)
flaky_jitter = flaky.with_options(retries=1, retry_delay_seconds=0.4, retry_jitter_factor=0.5)
flaky_never = flaky.with_options(retries=3, retry_condition_fn=never_retry)
flaky_value_errors = flaky.with_options(retries=2, retry_condition_fn=retry_only_value_errors)
type_error_conditional = type_error_then_value_error.with_options(
    retry_condition_fn=retry_only_value_errors
)
flaky_exhausted = flaky.with_options(retries=1)

# Flows receive a task by name, so flow parameters stay plain data.
RETRY_TASKS = {
    "no_delay": flaky_no_delay,
    "number_delay": flaky_number_delay,
    "list_delay": flaky_list_delay,
    "callable_delay": flaky_callable_delay,
    "backoff": flaky_backoff,
    "jitter": flaky_jitter,
    "never": flaky_never,
    "value_errors": flaky_value_errors,
    "exhausted": flaky_exhausted,
}


@flow
def run_task_flow(task_name, key, fail_times):
    """Run ``RETRY_TASKS[task_name](key, fail_times)`` inline; report timing and outcome."""
    started = time.monotonic()
    state = RETRY_TASKS[task_name](key, fail_times, return_state=True)
    elapsed = time.monotonic() - started
    value = state.result(raise_on_failure=False)
    return elapsed, state.name, value, state.state_details.task_run_id


@flow
def run_count_flow(key):
    return counting_retries(key)


@flow
def conditional_type_error_flow(key):
    state = type_error_conditional(key, return_state=True)
    return state.name, state.state_details.task_run_id


@flow
def submitted_retry_flow(key):
    future = flaky_no_delay.submit(key, 2)
    return future.result(), future.task_run_id


@task(retries=2)
def returns_failed_twice(key):
    record(key, "attempt")
    if len(recorded(key)) <= 2:
        return Failed(message="returned, not raised")
    return "done"


@task(retries=1)
def always_returns_failed(key):
    record(key, "attempt")
    return Failed(message="still failing")


@flow
def returned_failed_flow(key):
    inline = returns_failed_twice(key, return_state=True)
    submitted = returns_failed_twice.submit(f"{key}:submitted")
    exhausted = always_returns_failed(f"{key}:exhausted", return_state=True)
    submitted.wait()
    # Plain data back: a flow returning states would be judged by them.
    return [
        (state.name, state.result(raise_on_failure=False), state.state_details.task_run_id)
        for state in (inline, submitted.state, exhausted)
    ], exhausted.message


@flow(retries=1)
def flaky_flow(key):
    return flaky_body(key, 1)


@flow(retries=1, retry_delay_seconds=0.3)
def delayed_flaky_flow(key):
    return flaky_body(key, 1)


@flow(retries=1)
def always_failing_flow(key):
    record(key, "attempt")
    raise ValueError("always")


class TestTaskRetries:
    def test_retries_until_success_without_delay(self, key):
        _, name, value, task_run_id = run_task_flow("no_delay", key, 2)
        assert (name, value) == ("Completed", 3)
        assert h.names(task_run_id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]
        assert len(recorded(key)) == 3

    def test_submitted_task_retries(self, key):
        value, task_run_id = submitted_retry_flow(key)
        assert value == 3
        assert h.names(task_run_id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]

    def test_retries_exhausted_end_failed(self, key):
        _, name, value, task_run_id = run_task_flow("exhausted", key, 5)
        assert name == "Failed"
        assert isinstance(value, ValueError)
        assert h.names(task_run_id) == ["Pending", "Running", "Retrying", "Failed"]
        assert len(recorded(key)) == 2

    def test_run_count_increments_per_attempt(self, key):
        assert run_count_flow(key) == 3
        assert recorded(f"{key}:run_count") == [1, 2, 3]


class TestRetryDelays:
    def test_number_delay_elapses(self, key):
        elapsed, name, _, task_run_id = run_task_flow("number_delay", key, 1)
        assert name == "Completed"
        assert elapsed >= 0.28
        assert h.names(task_run_id) == [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "Completed",
        ]

    def test_list_delay_elapses(self, key):
        elapsed, name, _, task_run_id = run_task_flow("list_delay", key, 2)
        assert name == "Completed"
        assert elapsed >= 0.38
        assert h.names(task_run_id) == [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "AwaitingRetry",
            "Retrying",
            "Completed",
        ]

    def test_callable_delay_elapses(self, key):
        elapsed, name, _, task_run_id = run_task_flow("callable_delay", key, 2)
        assert name == "Completed"
        assert elapsed >= 0.28
        assert h.names(task_run_id).count("AwaitingRetry") == 2

    def test_exponential_backoff(self, key):
        assert exponential_backoff(backoff_factor=0.1)(3) == [0.1, 0.2, 0.4]
        elapsed, name, _, task_run_id = run_task_flow("backoff", key, 2)
        assert name == "Completed"
        assert elapsed >= 0.28
        assert h.names(task_run_id).count("AwaitingRetry") == 2

    def test_jitter_keeps_delay_within_factor(self, key):
        assert flaky_jitter.retry_jitter_factor == 0.5
        elapsed, name, _, task_run_id = run_task_flow("jitter", key, 1)
        assert name == "Completed"
        # jitter may shorten the delay by at most the factor: 0.4 * (1 - 0.5)
        assert elapsed >= 0.18
        assert h.names(task_run_id) == [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "Completed",
        ]


class TestRetryCondition:
    def test_condition_false_means_no_retry(self, key):
        _, name, value, task_run_id = run_task_flow("never", key, 1)
        assert name == "Failed"
        assert isinstance(value, ValueError)
        assert h.names(task_run_id) == ["Pending", "Running", "Failed"]
        assert len(recorded(key)) == 1
        assert recorded(f"cond:{task_run_id}") == [("flaky", "FAILED")]

    def test_condition_true_retries(self, key):
        _, name, value, task_run_id = run_task_flow("value_errors", key, 2)
        assert (name, value) == ("Completed", 3)
        assert h.names(task_run_id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]
        assert recorded(f"cond:{task_run_id}") == ["ValueError", "ValueError"]

    def test_condition_inspects_exception_type(self, key):
        name, task_run_id = conditional_type_error_flow(key)
        assert name == "Failed"
        assert h.names(task_run_id) == ["Pending", "Running", "Failed"]
        assert recorded(key) == ["attempt"]
        assert recorded(f"cond:{task_run_id}") == ["TypeError"]


class TestFlowRetries:
    def test_flow_retries_until_success(self, key):
        state = flaky_flow(key, return_state=True)
        assert state.is_completed()
        assert state.result() == 2
        flow_run_id = state.state_details.flow_run_id
        assert h.names(flow_run_id)[0] == "Pending"
        assert h.names(flow_run_id)[-1] == "Completed"
        assert h.types(flow_run_id).count("RUNNING") == 2
        assert "Failed" not in h.names(flow_run_id)

    def test_flow_retry_delay_elapses(self, key):
        started = time.monotonic()
        assert delayed_flaky_flow(key) == 2
        assert time.monotonic() - started >= 0.28

    def test_flow_retries_exhausted(self, key):
        state = always_failing_flow(key, return_state=True)
        assert state.is_failed()
        assert recorded(key) == ["attempt", "attempt"]
        assert h.names(state.state_details.flow_run_id)[-1] == "Failed"
        assert h.types(state.state_details.flow_run_id).count("RUNNING") == 2


class TestReturnedFailedStateRetries:
    def test_a_returned_failed_state_is_retried_like_a_raised_exception(self, key):
        # When a task returns Failed(...) on its first two attempts
        (inline, submitted, exhausted), message = returned_failed_flow(key)
        # Then it is retried (inline and submitted) and completes on the third
        assert inline[:2] == submitted[:2] == ("Completed", "done")
        assert len(recorded(key)) == len(recorded(f"{key}:submitted")) == 3
        for run_id in (inline[2], submitted[2]):
            assert h.names(run_id) == [
                "Pending", "Running", "Retrying", "Retrying", "Completed",
            ]
        # And a task that keeps returning Failed ends Failed once retries run out
        assert exhausted[0] == "Failed"
        assert message == "still failing"
        assert len(recorded(f"{key}:exhausted")) == 2
