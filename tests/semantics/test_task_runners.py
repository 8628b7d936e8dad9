"""Behaviour 12: tasks that submit tasks and wait for them complete, however deep.

A task run holds its thread (or worker slot) while it waits for a task run it
submitted; a chain deeper than the pool is wide must still finish. On the
Celery runner the nested runs are submitted from a worker and run on threads
of that worker.
"""

from engine import flow, task
from engine.task_runners import ThreadPoolTaskRunner

from . import _helpers as h

# Deeper than the thread pool is wide by default (32 threads).
DEPTH = 33


@task
def countdown(n: int) -> int:
    if n == 0:
        return 0
    return countdown.submit(n - 1).result() + 1


@flow
def countdown_flow(depth: int):
    return countdown.submit(depth)


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def narrow_countdown_flow(depth: int) -> list:
    futures = [countdown.submit(depth) for _ in range(2)]
    return [(f.result(), f.task_run_id) for f in futures]


class TestRecursiveSubmission:
    def test_a_chain_deeper_than_the_pool_completes(self, engine_runner):
        # The flow returns the future, which the flow run resolves to its state
        state = countdown_flow(DEPTH)
        assert state.result() == DEPTH
        assert h.names(state.state_details.task_run_id) == ["Pending", "Running", "Completed"]

    def test_a_pool_of_two_filled_by_waiting_tasks_still_completes(self, engine_runner):
        # Given both threads taken by tasks that wait for tasks they submit
        results = narrow_countdown_flow(5)
        assert [value for value, _ in results] == [5, 5]
        for _, run_id in results:
            assert h.names(run_id) == ["Pending", "Running", "Completed"]
