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


class TestExplicitRunner:
    def test_a_flow_given_a_runner_uses_it_whatever_the_settings(self, engine_runner):
        # Given a flow that names its runner: the thread pool on the celery
        # leg, the Celery runner (as the README imports it) on the thread leg
        # only when a broker exists, so the thread leg checks the thread pool.
        from engine.task_runners import ThreadPoolTaskRunner

        chosen = where_do_tasks_run.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))

        # When it runs, then its task runs ran in this process
        assert {pid for pid, _ in chosen()} == {os.getpid()}

    def test_celery_runner_imported_from_workers(self, engine_runner):
        import pytest

        from engine.exceptions import ConfigurationError
        from workers import CeleryTaskRunner

        if engine_runner == "thread":
            # Without a broker URL it can be named, but a run using it says what is missing
            runner = CeleryTaskRunner()
            with pytest.raises(RuntimeError, match="not started"):
                runner.submit(where_do_tasks_run, {})
            with pytest.raises(ConfigurationError, match="CELERITY_BROKER_URL"):
                where_do_tasks_run.with_options(task_runner=runner)()
            # and the flow run it created is not left Pending: it failed, saying why
            runs = get_store().list_flow_runs()
            (flow_run,) = [r for r in runs if r.flow_name == "where-do-tasks-run"]
            assert flow_run.state.is_failed()
            assert "CELERITY_BROKER_URL" in flow_run.state.message
            return

        chosen = where_do_tasks_run.with_options(task_runner=CeleryTaskRunner())

        assert os.getpid() not in {pid for pid, _ in chosen()}
