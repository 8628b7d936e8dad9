"""Spec item 5: state types, named constructors, results, predicates, history."""

import datetime

import pytest

from engine import flow
from engine.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Paused,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    Suspended,
    TimedOut,
    raise_state_exception,
)
from engine.utilities.annotations import quote

from . import _helpers as h
from ._tasks import add, flaky


@flow
def history_flow(key):
    ok = add(1, 2, return_state=True)
    retried = flaky(key, 2, return_state=True)  # no retries: fails at once
    return ok.state_details.task_run_id, retried.state_details.task_run_id


retrying_flaky = flaky.with_options(retries=2)
delayed_flaky = flaky.with_options(retries=2, retry_delay_seconds=0.1)


@flow
def retry_history_flow(key):
    return retrying_flaky(key, 2, return_state=True).state_details.task_run_id


@flow
def delayed_retry_history_flow(key):
    return delayed_flaky(key, 1, return_state=True).state_details.task_run_id


@flow
def failing_history_flow():
    raise ValueError("flow failed")


@flow
def raises_a_states_exception():
    raise_state_exception(Crashed(data=Failed(data=KeyError("nested"))))


@flow
def returns_a_quoted_failure():
    return quote(Failed(message="kept as data"))


class TestStateTypes:
    def test_all_types_exist(self):
        assert {t.name for t in StateType} >= {
            "SCHEDULED",
            "PENDING",
            "RUNNING",
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "CANCELLING",
            "CRASHED",
            "PAUSED",
        }

    @pytest.mark.parametrize(
        ("constructor", "state_type", "name"),
        [
            (Pending, StateType.PENDING, "Pending"),
            (NotReady, StateType.PENDING, "NotReady"),
            (Running, StateType.RUNNING, "Running"),
            (Retrying, StateType.RUNNING, "Retrying"),
            (AwaitingRetry, StateType.SCHEDULED, "AwaitingRetry"),
            (Completed, StateType.COMPLETED, "Completed"),
            (Cached, StateType.COMPLETED, "Cached"),
            (Failed, StateType.FAILED, "Failed"),
            (TimedOut, StateType.FAILED, "TimedOut"),
            (Crashed, StateType.CRASHED, "Crashed"),
            (Cancelled, StateType.CANCELLED, "Cancelled"),
            (Cancelling, StateType.CANCELLING, "Cancelling"),
            (Paused, StateType.PAUSED, "Paused"),
            (Suspended, StateType.PAUSED, "Suspended"),
        ],
    )
    def test_named_constructors(self, constructor, state_type, name):
        state = constructor()
        assert isinstance(state, State)
        assert state.type == state_type
        assert state.name == name
        assert isinstance(state.timestamp, datetime.datetime)

    def test_message(self):
        assert Failed(message="it broke").message == "it broke"
        assert Completed().message is None


class TestStateResult:
    def test_completed_result(self):
        assert Completed(data=42).result() == 42

    def test_failed_result_raises(self):
        with pytest.raises(ValueError, match="bad value"):
            Failed(data=ValueError("bad value")).result()

    def test_failed_result_without_raising_returns_exception(self):
        exc = Failed(data=ValueError("bad value")).result(raise_on_failure=False)
        assert isinstance(exc, ValueError)
        assert str(exc) == "bad value"


class TestStatePredicates:
    @pytest.mark.parametrize(
        ("state", "true_predicate"),
        [
            (Pending(), "is_pending"),
            (Running(), "is_running"),
            (Completed(), "is_completed"),
            (Failed(), "is_failed"),
            (Crashed(), "is_crashed"),
            (Cancelled(), "is_cancelled"),
            (Cancelling(), "is_cancelling"),
            (Paused(), "is_paused"),
            (AwaitingRetry(), "is_scheduled"),
        ],
    )
    def test_exactly_one_type_predicate_is_true(self, state, true_predicate):
        predicates = [
            "is_scheduled",
            "is_pending",
            "is_running",
            "is_completed",
            "is_failed",
            "is_crashed",
            "is_cancelled",
            "is_cancelling",
            "is_paused",
        ]
        truthy = [p for p in predicates if getattr(state, p)()]
        assert truthy == [true_predicate]

    def test_is_final(self):
        assert Completed().is_final()
        assert Failed().is_final()
        assert Crashed().is_final()
        assert Cancelled().is_final()
        assert not Running().is_final()
        assert not Pending().is_final()


class TestStateHistory:
    def test_task_histories_from_store(self, key):
        ok_id, failed_id = history_flow(key)
        assert h.names(ok_id) == ["Pending", "Running", "Completed"]
        assert h.names(failed_id) == ["Pending", "Running", "Failed"]
        timestamps = [s.timestamp for s in h.history(ok_id)]
        assert timestamps == sorted(timestamps)

    def test_retry_history_without_delay(self, key):
        task_run_id = retry_history_flow(key)
        assert h.names(task_run_id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]
        assert h.types(task_run_id) == ["PENDING", "RUNNING", "RUNNING", "RUNNING", "COMPLETED"]

    def test_retry_history_with_delay(self, key):
        task_run_id = delayed_retry_history_flow(key)
        assert h.names(task_run_id) == [
            "Pending",
            "Running",
            "AwaitingRetry",
            "Retrying",
            "Completed",
        ]
        assert h.types(task_run_id)[2] == "SCHEDULED"

    def test_flow_history(self, key):
        state = history_flow(key, return_state=True)
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Completed"]

    def test_failed_flow_history(self):
        state = failing_history_flow(return_state=True)
        assert h.names(state.state_details.flow_run_id) == ["Pending", "Running", "Failed"]


class TestStatesInFlows:
    def test_raise_state_exception_in_a_sync_flow(self):
        state = raises_a_states_exception(return_state=True)
        assert state.is_failed()
        error = state.result(raise_on_failure=False)
        assert isinstance(error, KeyError) and error.args == ("nested",)

    def test_a_quoted_state_is_the_flows_value_not_its_outcome(self):
        value = returns_a_quoted_failure()
        assert isinstance(value, quote)
        inner = value.unquote()
        assert isinstance(inner, State) and inner.is_failed()
