"""Every file under examples/ runs and does what its docstring says.

The flows run here on the embedded default (threads, in-memory store); the
demo runs as a subprocess and starts its own redis-server and workers.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEMO_TIMEOUT_SECONDS = 110  # under the suite's per-test timeout of 120 s


def load_example(stem: str) -> ModuleType:
    """Import ``examples/<stem>.py`` under a name that cannot clash with other modules."""
    name = f"celerity_example_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def memory_store() -> Iterator[Any]:
    """A fresh in-memory run store for each test; the previous one comes back after."""
    from engine.store import MemoryRunStore, set_store

    store = MemoryRunStore()
    previous = set_store(store)
    try:
        yield store
    finally:
        set_store(previous)


def state_names(store: Any, run_id: Any) -> list[str]:
    return [state.name for state in store.read_state_history(run_id)]


class TestHello:
    def test_inline_submit_and_map_give_greetings(self) -> None:
        hello = load_example("hello")

        state = hello.hello(return_state=True)

        assert state.is_completed()
        assert state.result() == [
            "hello, ada", "hello, linus", "hello, ada", "hello, grace", "hello, linus",
        ]

    def test_names_parameter(self) -> None:
        hello = load_example("hello")

        assert hello.hello(["x"]) == ["hello, x", "hello, x", "hello, x"]


class TestEtl:
    @pytest.fixture
    def finished(self, memory_store: Any) -> tuple[Any, list[Any]]:
        """The final state of ``etl(n=8)`` and its task runs."""
        etl = load_example("etl")
        state = etl.etl(n=8, return_state=True)
        return state, memory_store.read_task_runs(state.state_details.flow_run_id)

    def test_completes_with_the_summary(self, finished: tuple[Any, list[Any]]) -> None:
        state, _ = finished

        assert state.name == "Completed"
        # values 0, 10, ..., 70, each transformed +1: 280 + 8
        assert state.result() == {"rows": 8, "total": 288, "mean": 36.0}

    def test_flaky_fails_once_then_completes_on_retry(
        self, finished: tuple[Any, list[Any]], memory_store: Any
    ) -> None:
        _, task_runs = finished
        flaky = next(run for run in task_runs if run.task_key.endswith(".flaky"))
        states = state_names(memory_store, flaky.id)

        assert states == ["Pending", "Running", "Retrying", "Completed"]
        assert flaky.run_count == 2

    def test_map_makes_one_task_run_per_record(self, finished: tuple[Any, list[Any]]) -> None:
        _, task_runs = finished
        transforms = [run for run in task_runs if run.task_key.endswith(".transform")]

        assert len(transforms) == 8
        assert all(run.state_name == "Completed" for run in transforms)

    def test_summarize_is_a_child_flow_run(
        self, finished: tuple[Any, list[Any]], memory_store: Any
    ) -> None:
        state, _ = finished
        parent_id = state.state_details.flow_run_id

        children = [run for run in memory_store.list_flow_runs()
                    if run.parent_flow_run_id == parent_id]

        assert [(run.flow_name, run.state_name) for run in children] == [
            ("summarize", "Completed")
        ]
        assert [run.task_key for run in memory_store.read_task_runs(children[0].id)] == [
            "celerity_example_etl.count"
        ]

    def test_run_logger_and_prints_reach_the_store(
        self, finished: tuple[Any, list[Any]], memory_store: Any
    ) -> None:
        state, _ = finished

        messages = [log.message for log in memory_store.read_logs(state.state_details.flow_run_id)]

        assert "loaded 8 records, total 288" in messages
        assert "attempt 2 accepted 8 records" in messages  # print() in a task, log_prints
        assert "etl finished with 8 rows" in messages  # print() in the flow


class TestDemo:
    def test_demo_runs_both_parts_on_two_workers(self) -> None:
        # Given no CELERITY_* settings (the autouse clean_settings fixture removed them)
        # When the demo runs, starting its own redis-server and two workers
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "demo.py")],
            capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS, check=False,
        )
        output = done.stdout + done.stderr

        # Then it exits 0, both flows complete and two worker processes shared the work
        assert done.returncode == 0, output
        assert "etl.flaky states: Pending -> Running -> Retrying -> Completed" in done.stdout
        assert "etl (n=16): Completed" in done.stdout
        used = re.search(r"worker processes used: \d+ \((.*)\)", done.stdout)
        assert used is not None, output
        pids = {worker.rpartition(":")[2] for worker in used.group(1).split(", ")}
        assert len(pids) >= 2, output
