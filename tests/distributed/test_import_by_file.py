"""Workers and coordinators import a module from its file when its name alone fails.

A worker started from another directory (or a pytest module imported by its
rootdir) cannot import ``flows_elsewhere`` by name; the reference carries the
module's file, so the worker puts the file's root on ``sys.path`` and imports
the very same module.
"""

from __future__ import annotations

import ast
import subprocess
import uuid
from pathlib import Path

import pytest

from engine.store.redis import RedisRunStore

from .fleet import Fleet, use_broker
from .test_submit import explain

ELSEWHERE = '''\
import os

from engine import flow, task


@task
def where(x: int) -> tuple[int, int]:
    return x * 10, os.getpid()


@flow
def scattered(n: int) -> list:
    return where.map(range(n)).result()
'''


@pytest.fixture
def flows_elsewhere(tmp_path: Path) -> Path:
    """A flow file in a directory that is on no fleet process's PYTHONPATH."""
    directory = tmp_path / "not_on_any_path"
    directory.mkdir()
    path = directory / "flows_elsewhere.py"
    path.write_text(ELSEWHERE)
    return path


def test_flow_run_whose_module_workers_cannot_import_by_name(
    fleet: Fleet, flows_elsewhere: Path
) -> None:
    # Given a flow file the workers' sys.path does not reach
    # When it is run from a CLI process in that file's directory's parent
    result = subprocess.run(
        fleet.command("flow", "run", f"{flows_elsewhere}:scattered", "--param", "n=4"),
        env=fleet.env, cwd=flows_elsewhere.parent.parent, capture_output=True, text=True,
        timeout=90, check=False,
    )

    # Then the workers loaded the module from its file and ran every task run
    assert result.returncode == 0, explain(result, fleet)
    assert "Completed" in result.stdout
    printed = result.stdout.split("Result: ", 1)[1].strip()
    assert [value for value, _pid in ast.literal_eval(printed)] == [0, 10, 20, 30]


def test_submitted_flow_whose_module_coordinator_cannot_import_by_name(
    fleet: Fleet, flows_elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Flow object imported here from a directory only this process has on sys.path
    from workers.producer import submit_flow_run, wait_for_flow_run

    use_broker(monkeypatch, fleet.env["CELERITY_BROKER_URL"])
    monkeypatch.syspath_prepend(str(flows_elsewhere.parent))
    import flows_elsewhere as module

    # When a producer submits it to the coordinator
    run_id = submit_flow_run(module.scattered, {"n": 3})
    state = wait_for_flow_run(run_id, timeout=60)

    # Then the coordinator imported it by file and the workers ran its task runs
    assert state.is_completed(), (state, fleet.log_tail())
    store = RedisRunStore(fleet.env["CELERITY_BROKER_URL"])
    try:
        task_runs = store.read_task_runs(uuid.UUID(str(run_id)))
    finally:
        store.close()
    assert len(task_runs) == 3
    assert all(run.state is not None and run.state.is_completed() for run in task_runs)
