"""ProcessPoolTaskRunner: a flow's task runs execute in spawned processes of this machine.

On the thread leg the run store is in memory, so each run's records come back
from its process and are copied into this process's store; on the celery leg
the store is Redis, which the pool processes write to directly. Either way the
run history, logs and values read here are the same.
"""

import os

import pytest

from engine import flow, get_run_logger, tags, task
from engine.context import TagsContext
from engine.task_runners import ProcessPoolTaskRunner

from . import _helpers as h

COMPLETED = ["Pending", "Running", "Completed"]


def mark_process(value: str) -> None:
    """A pool initializer: runs once in each worker process."""
    os.environ["POOL_TEST_MARK"] = value


@task
def where(x: int) -> tuple:
    get_run_logger().info("running %s in a pool process", x)
    return x * 2, os.getpid(), os.environ.get("POOL_TEST_MARK")


@task
async def async_double(x: int) -> int:
    return x * 2


@task
def current_tags() -> list:
    return sorted(TagsContext.get().current_tags)


@task
def explode(message: str) -> None:
    raise ValueError(message)


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def nested_sum(n: int) -> int:
    """n + (n - 1) + ... + 0, each term a task run submitted from the one above."""
    if n == 0:
        return 0
    return n + nested_sum.submit(n - 1).result()


@flow(task_runner=ProcessPoolTaskRunner(max_workers=2, initializer=mark_process, initargs=("on",)))
def pool_flow() -> dict:
    single = where.submit(1)
    mapped = where.map([2, 3])
    with tags("blue"):
        tagged = current_tags.submit()
    return {
        "single": (single.result(), single.task_run_id),
        "mapped": [(f.result(), f.task_run_id) for f in mapped],
        "async": async_double.submit(21).result(),
        "tags": tagged.result(),
    }


@flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
def dependency_flow() -> dict:
    a = add.submit(1, 2)
    b = add.submit(a, 10)  # a future as a parameter
    c = add.submit(b, 100, wait_for=[a])
    failed = explode.submit("upstream broke")
    downstream = add.submit(1, 1, wait_for=[failed])
    failed.wait()
    downstream.wait()
    return {
        "values": (a.result(), b.result(), c.result()),
        "failed": (failed.state.name, failed.task_run_id),
        "downstream": (downstream.state.name, downstream.task_run_id),
    }


@flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
def failing_flow() -> tuple:
    future = explode.submit("from a pool process")
    try:
        future.result()
    except ValueError as exc:
        return str(exc), future.task_run_id
    return None, future.task_run_id


@flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
def nested_flow() -> tuple:
    future = nested_sum.submit(3)
    return future.result(), future.task_run_id


class TestProcessPool:
    def test_runs_execute_in_pool_processes_with_the_flows_context(self, engine_runner):
        state = pool_flow(return_state=True)
        out = state.result()
        (value, pid, mark), run_id = out["single"]

        # The value came back, computed in another process set up by the initializer
        assert value == 2 and pid != os.getpid() and mark == "on"
        assert [v for (v, _, _), _ in out["mapped"]] == [4, 6]
        assert out["async"] == 42
        assert out["tags"] == ["blue"]
        # The run's history and logs are in this process's store
        for _, task_run_id in [out["single"], *out["mapped"]]:
            assert h.names(task_run_id) == COMPLETED
        flow_run_id = state.state_details.flow_run_id
        assert any("running 1 in a pool process" in m for m in h.log_messages(flow_run_id))

    def test_upstream_futures_and_wait_for(self, engine_runner):
        out = dependency_flow(return_state=True).result()
        assert out["values"] == (3, 13, 113)
        # A failed upstream: the downstream never runs, it is NotReady
        assert out["failed"][0] == "Failed"
        assert out["downstream"][0] == "NotReady"
        assert h.names(out["downstream"][1]) == ["Pending", "NotReady"]

    def test_a_task_exception_reaches_the_caller(self, engine_runner):
        message, run_id = failing_flow()
        assert message == "from a pool process"
        assert h.names(run_id) == ["Pending", "Running", "Failed"]

    def test_tasks_submitted_inside_a_pool_process(self, engine_runner):
        state = nested_flow(return_state=True)
        value, run_id = state.result()
        assert value == 3 + 2 + 1
        assert h.names(run_id) == COMPLETED
        # The nested runs are recorded for the flow run too
        runs = h.store().read_task_runs(state.state_details.flow_run_id)
        assert len(runs) == 4
        assert all(run.state.is_completed() for run in runs)


def test_a_runner_must_be_entered(engine_runner):
    with pytest.raises(RuntimeError, match="Task runner is not started"):
        ProcessPoolTaskRunner().submit(add, {"x": 1, "y": 2})
