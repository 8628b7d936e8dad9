"""The suite's runner parameter really changes where submitted task runs execute."""

import os

from engine import flow, task
from engine.store import get_store


@task
def pid_of_runner() -> int:
    return os.getpid()


@flow
def where_do_tasks_run() -> list:
    futures = [pid_of_runner.submit() for _ in range(4)]
    return [(f.result(), f.task_run_id) for f in futures]


class TestRunnerInUse:
    def test_submitted_tasks_run_where_the_runner_says(self, engine_runner):
        results = where_do_tasks_run()
        pids = {pid for pid, _ in results}
        workers = {get_store().read_task_run(run_id).worker for _, run_id in results}
        if engine_runner == "thread":
            assert pids == {os.getpid()}
        else:
            # Given the Celery runner, then no task ran in this (coordinator) process.
            assert os.getpid() not in pids
            assert all(worker and not worker.endswith(f":{os.getpid()}") for worker in workers)
