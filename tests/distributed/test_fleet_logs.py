"""Logs on a real fleet: ``celerity flow run`` prints its task runs' worker lines as they
arrive, with their task run names and tracebacks; a worker's console prints each line once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fleet import Fleet, session_fleet

RUN_SECONDS = 90

FLOWS = '''\
from engine import flow, get_run_logger, task


@task
def shout(marker: str, n: int) -> str:
    get_run_logger().warning("worker line %s of %s", n, marker)
    from engine.context import TaskRunContext
    return TaskRunContext.get().task_run.name


@task
def divide(marker: str) -> float:
    return len(marker) / 0


@flow
def loud(marker: str) -> list[str]:
    get_run_logger().info("flow line of %s", marker)
    futures = [shout.submit(marker, n) for n in range(3)]
    return [f.result() for f in futures]


@flow
def nested(marker: str) -> list[str]:
    shout.submit(f"parent-{marker}", 0).result()
    return loud(marker)


@flow
def broken(marker: str) -> float:
    return divide.submit(marker).result()
'''


@pytest.fixture(scope="module")
def log_flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log-flows") / "log_flows.py"
    path.write_text(FLOWS)
    return path


@pytest.fixture(scope="module")
def fleet(redis_server, log_flows: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Fleet]:
    # Own queues and keys: other session fleets on this Redis must not take these task runs.
    own = {"CELERITY_KEY_PREFIX": "fleetlogs", "CELERITY_DEFAULT_QUEUE": "fleetlogs",
           "CELERITY_FLOW_QUEUE": "fleetlogs-flows"}
    with session_fleet(redis_server, tmp_path_factory, "fleet-logs", workers=1,
                       pythonpath=[log_flows.parent], env=own) as running:
        yield running


def flow_run(fleet: Fleet, flows: Path, function: str, marker: str
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celerity", "flow", "run", f"{flows}:{function}",
         "--param", f"marker={marker}"],
        env=fleet.env, cwd=flows.parent, capture_output=True, text=True, timeout=RUN_SECONDS,
        check=False,
    )


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def wait_for_log(fleet: Fleet, needle: str, count: int, timeout: float = 30.0) -> str:
    """The fleet's log once it holds ``count`` lines with ``needle`` (a worker may flush late)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = fleet.log_path.read_text(errors="replace")
        if len(lines_with(text, needle)) >= count:
            return text
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} lines with {needle!r}:\n{fleet.log_tail()}")


def test_flow_run_prints_the_workers_lines_once_with_their_task_run_names(fleet, log_flows):
    marker = f"m{uuid.uuid4().hex[:8]}"
    result = flow_run(fleet, log_flows, "loud", marker)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{fleet.log_tail()}"
    names = re.findall(r"shout-[0-9a-f]+", result.stdout.split("Result:", 1)[1])
    assert len(names) == 3, result.stdout
    for n, name in enumerate(names):
        printed = lines_with(result.stderr, f"worker line {n} of {marker}")
        assert len(printed) == 1, result.stderr
        assert re.search(rf"\| WARNING \| {name} - worker line {n} of {marker}$", printed[0])
    flow_line = lines_with(result.stderr, f"flow line of {marker}")
    assert len(flow_line) == 1
    finished = result.stderr.index("Finished in state Completed()")
    assert all(result.stderr.index(f"worker line {n} of") < finished for n in range(3))


def test_flow_run_prints_a_failed_task_runs_traceback(fleet, log_flows):
    marker = f"m{uuid.uuid4().hex[:8]}"
    result = flow_run(fleet, log_flows, "broken", marker)
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    failed = lines_with(result.stderr, "Task run failed with exception: ZeroDivisionError")
    assert len(failed) == 1 and re.search(r"\| ERROR   \| divide-[0-9a-f]+ - ", failed[0])
    after = result.stderr[result.stderr.index(failed[0]):]
    assert "Traceback (most recent call last):" in after
    assert "return len(marker) / 0" in after
    assert after.index("return len(marker) / 0") < after.index("Finished in state Failed")


def test_a_workers_console_prints_each_line_once(fleet, log_flows):
    marker = f"m{uuid.uuid4().hex[:8]}"
    result = flow_run(fleet, log_flows, "loud", marker)
    assert result.returncode == 0, result.stderr
    log = wait_for_log(fleet, f"of {marker}", 3)
    for n in range(3):
        printed = lines_with(log, f"worker line {n} of {marker}")
        assert len(printed) == 1, "\n".join(printed)
        # ours, not Celery's redirected-stderr WARNING nor its root handler's line
        assert re.match(rf"\d\d:\d\d:\d\d \| WARNING \| shout-[0-9a-f]+ - worker line {n}",
                        printed[0]), printed[0]


def test_runs_logs_labels_each_line_and_marks_a_subflows(fleet, log_flows):
    # Given a finished flow run with a task run of its own and a subflow with three
    marker = f"m{uuid.uuid4().hex[:8]}"
    result = flow_run(fleet, log_flows, "nested", marker)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{fleet.log_tail()}"
    name = re.search(r"Beginning flow run '([^']+)' for flow 'nested'", result.stderr)
    assert name, result.stderr
    # When its logs are read with runs logs (a run name does as an id)
    shown = subprocess.run(
        [sys.executable, "-m", "celerity", "runs", "logs", name.group(1)],
        env=fleet.env, capture_output=True, text=True, timeout=RUN_SECONDS, check=False,
    )
    assert shown.returncode == 0, shown.stderr
    # Then the parent's task run line names its task run
    (own,) = lines_with(shown.stdout, f"worker line 0 of parent-{marker}")
    assert re.search(rf"\| WARNING  \| shout-[0-9a-f]+ - worker line 0 of parent-{marker}$", own)
    # and the subflow's lines are there, marked with the subflow run and their writer
    for n in range(3):
        (line,) = lines_with(shown.stdout, f"worker line {n} of {marker}")
        assert re.search(r"\| subflow [a-z0-9-]+ > shout-[0-9a-f]+ - worker line", line), line
    (flow_line,) = lines_with(shown.stdout, f"flow line of {marker}")
    assert re.search(r"\| subflow [a-z0-9-]+ - flow line of", flow_line), flow_line
