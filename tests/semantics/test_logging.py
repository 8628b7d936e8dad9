"""Spec item 11: run loggers, log shipping to the store, log_prints."""

import logging
import sys

import pytest

from engine import flow, task
from engine.context import FlowRunContext, TaskRunContext
from engine.exceptions import MissingContextError
from engine.logging import disable_run_logger, get_logger, get_run_logger

from . import _helpers as h


@task
def logging_task(marker):
    get_run_logger().warning(f"task-message-{marker}")
    return TaskRunContext.get().task_run.id


@flow
def logging_flow(marker):
    get_run_logger().info(f"flow-message-{marker}")
    task_run_id = logging_task(marker)
    return FlowRunContext.get().flow_run.id, task_run_id


@flow
def disabled_logger_flow(marker):
    with disable_run_logger():
        get_run_logger().info(f"hidden-{marker}")
    get_run_logger().info(f"visible-{marker}")
    return FlowRunContext.get().flow_run.id


@task(log_prints=True)
def printing_task(marker):
    print(f"task-print-{marker}")
    return TaskRunContext.get().task_run.id


@flow(log_prints=True)
def printing_flow(marker):
    print(f"flow-print-{marker}")
    return FlowRunContext.get().flow_run.id, printing_task(marker)


@flow(log_prints=True)
def printing_to_stderr_and_file_flow(marker, path):
    print(f"stderr-print-{marker}", file=sys.stderr)
    with open(path, "w") as handle:
        print(f"file-print-{marker}", file=handle)
    return FlowRunContext.get().flow_run.id


@flow
def not_printing_flow(marker):
    print(f"quiet-print-{marker}")
    return FlowRunContext.get().flow_run.id


@flow
def printing_subflow(marker):
    print(f"subflow-print-{marker}")
    return FlowRunContext.get().flow_run.id


@flow(log_prints=True)
def parent_of_printing_subflow(marker):
    return printing_subflow(marker)


@flow(log_prints=False)
def quiet_subflow(marker):
    print(f"quiet-subflow-print-{marker}")
    return FlowRunContext.get().flow_run.id


@flow(log_prints=True)
def parent_of_quiet_subflow(marker):
    return quiet_subflow(marker)


class TestRunLogger:
    def test_flow_and_task_logs_reach_store_with_run_ids(self, key):
        flow_run_id, task_run_id = logging_flow(key)
        logs = h.logs(flow_run_id)
        flow_logs = [log for log in logs if log.message == f"flow-message-{key}"]
        task_logs = [log for log in logs if log.message == f"task-message-{key}"]
        assert len(flow_logs) == 1
        assert len(task_logs) == 1
        flow_log, task_log = flow_logs[0], task_logs[0]
        assert flow_log.flow_run_id == flow_run_id
        assert flow_log.task_run_id is None
        assert flow_log.level == logging.INFO
        assert task_log.flow_run_id == flow_run_id
        assert task_log.task_run_id == task_run_id
        assert task_log.level == logging.WARNING
        assert isinstance(flow_log.name, str) and flow_log.name
        assert isinstance(task_log.name, str) and task_log.name

    def test_run_logger_outside_run_raises(self):
        with pytest.raises(MissingContextError):
            get_run_logger()

    def test_get_logger_returns_stdlib_logger(self):
        logger = get_logger("semantics-test")
        assert isinstance(logger, logging.Logger)
        assert "semantics-test" in logger.name

    def test_disable_run_logger(self, key):
        flow_run_id = disabled_logger_flow(key)
        messages = h.log_messages(flow_run_id)
        assert f"visible-{key}" in messages
        assert not any(f"hidden-{key}" in m for m in messages)


class TestLogPrints:
    def test_prints_captured_for_flow_and_task(self, key):
        flow_run_id, task_run_id = printing_flow(key)
        logs = h.logs(flow_run_id)
        flow_prints = [log for log in logs if f"flow-print-{key}" in log.message]
        task_prints = [log for log in logs if f"task-print-{key}" in log.message]
        assert flow_prints and flow_prints[0].flow_run_id == flow_run_id
        assert task_prints and task_prints[0].task_run_id == task_run_id

    def test_prints_not_captured_without_log_prints(self, key, capsys):
        flow_run_id = not_printing_flow(key)
        assert not any(f"quiet-print-{key}" in m for m in h.log_messages(flow_run_id))
        assert f"quiet-print-{key}" in capsys.readouterr().out

    def test_subflow_without_setting_follows_parent_log_prints(self, key):
        subflow_run_id = parent_of_printing_subflow(key)
        assert f"subflow-print-{key}" in h.log_messages(subflow_run_id)

    def test_subflow_log_prints_false_wins_over_parent(self, key):
        subflow_run_id = parent_of_quiet_subflow(key)
        assert not any(f"quiet-subflow-print-{key}" in m for m in h.log_messages(subflow_run_id))

    def test_prints_to_stderr_captured_but_not_to_files(self, key, tmp_path):
        path = tmp_path / "printed.txt"
        flow_run_id = printing_to_stderr_and_file_flow(key, str(path))
        messages = h.log_messages(flow_run_id)
        assert f"stderr-print-{key}" in messages
        assert not any(f"file-print-{key}" in m for m in messages)
        assert path.read_text() == f"file-print-{key}\n"


@flow
def flow_logging_once(marker):
    get_run_logger().warning(f"once-{marker}")
    return FlowRunContext.get().flow_run.id


@task
def task_logging_once(marker):
    get_run_logger().warning(f"task-once-{marker}")
    return marker


class TestDisableRunLogger:
    """Behaviour 15: disable_run_logger disables the run loggers themselves (``.disabled``)."""

    def test_run_loggers_are_disabled_inside_and_restored_after(self):
        flow_logger, task_logger = get_logger("flow_runs"), get_logger("task_runs")
        with disable_run_logger():
            assert flow_logger.disabled and task_logger.disabled
            # Prefect's names for them are the same loggers
            assert get_logger("prefect.flow_runs").disabled
            assert get_logger("prefect.task_runs").disabled
        assert not flow_logger.disabled and not task_logger.disabled

    def test_a_flow_run_in_the_block_keeps_no_log_lines(self, key):
        with disable_run_logger():
            flow_run_id = flow_logging_once(key)
        assert f"once-{key}" not in h.log_messages(flow_run_id)
        flow_run_id = flow_logging_once(key)
        assert f"once-{key}" in h.log_messages(flow_run_id)

    def test_functions_that_log_can_be_called_directly_in_the_block(self):
        with disable_run_logger():
            assert task_logging_once.fn("direct") == "direct"
        with pytest.raises(MissingContextError):
            task_logging_once.fn("direct")

    def test_an_already_disabled_logger_stays_disabled(self):
        from engine.logging import disable_logger

        logger = logging.getLogger("semantics.already-disabled")
        logger.disabled = True
        with disable_logger(logger.name):
            assert logger.disabled
        assert logger.disabled
        logger.disabled = False


@flow
def returns_flow_logger_extra():
    return dict(get_run_logger(colour="blue").extra)


@task
def returns_task_logger_extra():
    return dict(get_run_logger().extra)


@flow(name="extra-parent")
def returns_task_extra_from_flow():
    return returns_task_logger_extra(), FlowRunContext.get().flow_run


class TestRunLoggerExtra:
    def test_flow_run_logger_names_the_run(self):
        extra = returns_flow_logger_extra()
        assert extra["flow_name"] == "returns-flow-logger-extra"
        assert extra["colour"] == "blue"
        assert extra["deployment_name"] is None
        assert extra["flow_run_name"] and extra["flow_run_name"] != "<unknown>"

    def test_task_run_logger_names_the_task_and_its_flow_run(self):
        extra, flow_run = returns_task_extra_from_flow()
        assert extra["task_name"] == "returns_task_logger_extra"
        assert extra["flow_run_id"] == str(flow_run.id)
        assert extra["task_run_name"].startswith("returns_task_logger_extra")


@flow
def logs_through_another_library(marker):
    logging.getLogger("another-library").warning(f"library-{marker}")
    return FlowRunContext.get().flow_run.id


class TestExtraLoggers:
    """Loggers named in logging_extra_loggers keep their lines in runs with the run's logs."""

    def test_a_library_line_in_a_flow_run_is_kept_with_it(self, key):
        from engine.logging import setup_logging
        from engine.settings import PREFECT_LOGGING_EXTRA_LOGGERS, temporary_settings

        library = logging.getLogger("another-library")
        with temporary_settings({PREFECT_LOGGING_EXTRA_LOGGERS: "another-library"}):
            setup_logging(incremental=False)
        try:
            flow_run_id = logs_through_another_library(key)
            library.warning(f"outside-{key}")  # no run: kept nowhere
        finally:
            library.handlers.clear()
        logs = [log for log in h.logs(flow_run_id) if log.name == "another-library"]
        assert [log.message for log in logs] == [f"library-{key}"]
        assert logs[0].flow_run_id == flow_run_id


@task
def divides_by_zero(marker):
    return len(marker) / 0


@task(retries=1)
def divides_by_zero_twice(marker):
    return len(marker) / 0


@flow
def flow_of_a_failing_task(marker, retried=False):
    failing = divides_by_zero_twice if retried else divides_by_zero
    failing.submit(marker).wait()
    return FlowRunContext.get().flow_run.id


class TestTracebacks:
    """A failed attempt logs its traceback, and the Failed state keeps it (``runs show``)."""

    def _failed_task_run(self, flow_run_id):
        (task_run,) = h.store().read_task_runs(flow_run_id)
        return task_run

    def test_the_failed_state_keeps_the_traceback(self, key):
        flow_run_id = flow_of_a_failing_task(key)
        state = self._failed_task_run(flow_run_id).state
        assert state.is_failed()
        traceback = state.state_details.traceback
        assert traceback.startswith("Traceback (most recent call last):")
        assert "in divides_by_zero\n    return len(marker) / 0" in traceback
        assert traceback.rstrip().endswith("ZeroDivisionError: division by zero")
        assert "run_engine.py" not in traceback  # the engine's frames are left out

    def test_the_failure_line_in_the_run_logs_carries_the_traceback(self, key):
        flow_run_id = flow_of_a_failing_task(key)
        task_run = self._failed_task_run(flow_run_id)
        (line,) = [log for log in h.logs(flow_run_id) if log.task_run_id == task_run.id]
        first, _, traceback = line.message.partition("\n")
        assert first == "Task run failed with exception: ZeroDivisionError('division by zero')"
        assert line.level == logging.ERROR
        assert traceback.startswith("Traceback (most recent call last):")
        assert "return len(marker) / 0" in traceback

    def test_each_failed_attempt_logs_its_traceback(self, key):
        flow_run_id = flow_of_a_failing_task(key, retried=True)
        task_run = self._failed_task_run(flow_run_id)
        lines = [log.message for log in h.logs(flow_run_id) if log.task_run_id == task_run.id]
        assert [line.splitlines()[0] for line in lines] == [
            "Task run failed with exception: ZeroDivisionError('division by zero')"
            " - Retry 1/1 will start immediately",
            "Task run failed with exception: ZeroDivisionError('division by zero')"
            " - Retries are exhausted",
        ]
        assert all("return len(marker) / 0\n" in line for line in lines)


@task
def greets(marker):
    get_run_logger().info(f"greeting-{marker}")
    return TaskRunContext.get().task_run.name


@flow
def greeting_subflow(marker):
    get_run_logger().info(f"subflow-line-{marker}")
    return FlowRunContext.get().flow_run.name, greets.submit(f"child-{marker}").result()


@flow
def greeting_parent(marker):
    get_run_logger().info(f"parent-line-{marker}")
    own_task = greets.submit(marker).result()
    child_name, child_task = greeting_subflow(marker)
    flow_run = FlowRunContext.get().flow_run
    return flow_run.id, flow_run.name, own_task, child_name, child_task


class TestRunLogTail:
    """A flow run's lines read with the name of their writer, its subflows' lines included."""

    def test_lines_name_their_task_run_and_include_the_subflows_marked(self, key):
        from engine.logging.tail import RunLogTail

        flow_run_id, name, own_task, child, child_task = greeting_parent(key)
        lines = RunLogTail(h.store(), flow_run_id).poll()
        labels = {line.log.message: line.label for line in lines}
        assert labels[f"parent-line-{key}"] == name
        assert labels[f"greeting-{key}"] == own_task
        assert labels[f"subflow-line-{key}"] == f"subflow {child}"
        assert labels[f"greeting-child-{key}"] == f"subflow {child} > {child_task}"
        (line,) = [line for line in lines if line.log.message == f"greeting-child-{key}"]
        assert line.text().endswith(f"| subflow {child} > {child_task} - greeting-child-{key}")
        stamps = [line.log.timestamp for line in lines]
        assert stamps == sorted(stamps)

    def test_a_second_poll_returns_only_new_lines(self, key):
        from engine.logging.tail import RunLogTail

        flow_run_id, *_ = greeting_parent(key)
        tail = RunLogTail(h.store(), flow_run_id)
        first = tail.poll()
        assert first
        assert tail.poll() == []
        h.store().write_logs([type(first[0].log)(
            name="later", level=logging.INFO, message=f"later-{key}", flow_run_id=flow_run_id
        )])
        assert [line.log.message for line in tail.poll()] == [f"later-{key}"]

    def test_without_subflows_only_the_flow_runs_own_list_is_read(self, key):
        from engine.logging.tail import RunLogTail

        flow_run_id, *_ = greeting_parent(key)
        lines = RunLogTail(h.store(), flow_run_id, subflows=False).poll()
        assert {line.log.flow_run_id for line in lines} == {flow_run_id}
        assert not any(line.subflow for line in lines)
