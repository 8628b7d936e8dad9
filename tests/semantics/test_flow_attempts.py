"""A later attempt of a flow run reuses the task runs that completed before.

Prefect identifies a task run within its flow run by task key and dynamic key
(the n-th call of that task); a flow retry does not run again what completed.
The same mechanism resumes a crashed flow run (``retry_flow_run``).
"""

import pytest

from engine import flow, retry_flow_run, task
from engine.flow_attempts import RetryRefused
from engine.store import get_store

from . import _helpers as h
from ._side_effects import record, recorded


@task
def counted(key, x):
    record(f"{key}:ran", x)
    return x * 10


@task
def fails_first_time(key):
    record(f"{key}:fragile", "attempt")
    if len(recorded(f"{key}:fragile")) == 1:
        raise ValueError("first attempt fails")
    return "ok"


@flow(retries=1)
def submits_then_fails(key):
    first = counted.submit(key, 1)
    second = counted(key, 2)  # called inline
    mapped = counted.map(key, [3, 4])
    fragile = fails_first_time.submit(key)
    return first.result() + second + sum(f.result() for f in mapped), fragile.result()


@flow
def fails_after_work(key):
    done = counted.submit(key, 5).result()
    if len(recorded(f"{key}:flow")) == 0:
        record(f"{key}:flow", "failed once")
        raise RuntimeError("the flow fails after its task completed")
    return done + counted(key, 6)


class TestFlowRetryReusesCompletedTaskRuns:
    def test_completed_task_runs_are_not_run_again(self, key):
        # When a flow's first attempt completes four task runs and fails on a fifth
        state = submits_then_fails(key, return_state=True)
        # Then the retry completes the flow without running the four again
        assert state.is_completed(), state
        assert state.result() == (10 + 20 + 30 + 40, "ok")
        assert sorted(recorded(f"{key}:ran")) == [1, 2, 3, 4]
        assert recorded(f"{key}:fragile") == ["attempt", "attempt"]
        flow_run_id = state.state_details.flow_run_id
        assert h.types(flow_run_id).count("RUNNING") == 2

    def test_the_reused_runs_keep_their_identity(self, key):
        state = submits_then_fails(key, return_state=True)
        runs = get_store().read_task_runs(state.state_details.flow_run_id)
        completed = [(r.task_key, r.dynamic_key) for r in runs if r.state.is_completed()]
        # one completed run per (task key, dynamic key): nothing duplicated
        assert len(completed) == len(set(completed)) == 5


class TestRetryFlowRun:
    def test_a_failed_flow_run_runs_again_reusing_its_completed_task_runs(self, key):
        # Given a flow run that failed after one of its task runs completed
        failed = fails_after_work(key, return_state=True)
        assert failed.is_failed()
        flow_run_id = failed.state_details.flow_run_id
        # When it is retried
        final = retry_flow_run(flow_run_id)
        # Then it completes in the same flow run; the completed task did not run again
        assert final.is_completed(), final
        assert final.result() == 50 + 60
        assert recorded(f"{key}:ran") == [5, 6]
        assert h.names(flow_run_id)[-1] == "Completed"
        assert "AwaitingRetry" in h.names(flow_run_id)

    def test_a_completed_flow_run_is_refused(self, key):
        state = fails_after_work(key, return_state=True)
        final = retry_flow_run(state.state_details.flow_run_id)
        assert final.is_completed()
        with pytest.raises(RetryRefused, match="already completed"):
            retry_flow_run(state.state_details.flow_run_id)
