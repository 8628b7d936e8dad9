"""Spec item 13: run_flow_in_subprocess.

API assumptions (stated in the issue as provisional):
- ``run_flow_in_subprocess(flow, parameters={...})`` starts a *spawned*
  ``multiprocessing.Process`` running the flow with the serialized context and
  returns it already started;
- the returned process has ``process.flow_run_id`` (the child's flow run id);
- ``read_subprocess_result(process)``, called after ``process.join()``, returns
  the flow run's final State (value readable with ``state.result()``), so the
  test does not depend on sharing the in-memory store across processes.
"""

import multiprocessing.process

from engine import flow, tags
from engine.flow_engine import read_subprocess_result, run_flow_in_subprocess
from engine.store import get_store

from ._tasks import subprocess_add_flow, subprocess_failing_flow


@flow
def parent_of_subprocess_flow(x: int):
    process = run_flow_in_subprocess(subprocess_add_flow, parameters={"x": x, "y": 1})
    process.join(timeout=60)
    return process.exitcode, read_subprocess_result(process).result()


class TestRunFlowInSubprocess:
    def test_completed_flow_result_read_back(self):
        process = run_flow_in_subprocess(subprocess_add_flow, parameters={"x": 2, "y": 40})
        assert isinstance(process, multiprocessing.process.BaseProcess)
        process.join(timeout=60)
        assert process.exitcode == 0
        assert process.flow_run_id is not None
        state = read_subprocess_result(process)
        assert state.is_completed()
        assert state.result() == 42

    def test_parameters_are_validated_in_child(self):
        process = run_flow_in_subprocess(subprocess_add_flow, parameters={"x": "5", "y": "6"})
        process.join(timeout=60)
        state = read_subprocess_result(process)
        assert state.is_completed()
        assert state.result() == 11

    def test_failed_flow_state_read_back(self):
        process = run_flow_in_subprocess(
            subprocess_failing_flow, parameters={"message": "child process failure"}
        )
        process.join(timeout=60)
        assert process.flow_run_id is not None
        state = read_subprocess_result(process)
        assert state.is_failed()
        exc = state.result(raise_on_failure=False)
        assert isinstance(exc, ValueError)
        assert "child process failure" in str(exc)

    def test_started_from_inside_a_flow(self):
        exitcode, value = parent_of_subprocess_flow(9)
        assert exitcode == 0
        assert value == 10

    def test_flow_run_carries_the_tags_of_the_caller(self):
        with tags("from-the-caller"):
            process = run_flow_in_subprocess(subprocess_add_flow, parameters={"x": 1, "y": 1})
        process.join(timeout=60)
        assert read_subprocess_result(process).result() == 2
        assert "from-the-caller" in get_store().read_flow_run(process.flow_run_id).tags
