"""The coordinator task's handler, run in this process against a real Redis store.

The flow itself still runs in a spawned child process, as on a coordinator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import flow
from engine.schemas import FlowRun
from engine.states import Scheduled, StateType
from engine.store import get_store
from workers.coordinator import handle_flow_run_message
from workers.producer import SubmissionError, submit_flow_run
from workers.protocol import FlowRunMessage

from .fleet import use_broker


@pytest.fixture
def redis_store(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process (and its spawned children) use the Redis store at ``redis_url``."""
    use_broker(monkeypatch, redis_url)
    yield


def scheduled_run(name: str = "crash") -> FlowRun:
    state = Scheduled()
    run = FlowRun(name="test-run", flow_name=name, state=state)
    state.state_details.flow_run_id = run.id
    return get_store().create_flow_run(run)


def file_message(run: FlowRun, path: Path, function: str) -> FlowRunMessage:
    return FlowRunMessage(run.id, {"file": str(path), "function": function}, {})


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / f"coord_{uuid.uuid4().hex[:8]}.py"
    path.write_text(source)
    return path


def final_state(run: FlowRun):
    return get_store().read_flow_run(run.id).state


@pytest.mark.usefixtures("redis_store")
def test_a_crashing_flow_process_ends_crashed_with_its_exit_code(tmp_path: Path) -> None:
    path = write(tmp_path, "import os\nfrom engine import flow\n\n\n@flow\ndef crash():\n"
                           "    os._exit(3)\n")
    run = scheduled_run()

    handle_flow_run_message(file_message(run, path, "crash"))

    state = final_state(run)
    assert state.type == StateType.CRASHED
    assert "exit code 3" in state.message


@pytest.mark.usefixtures("redis_store")
def test_a_missing_file_ends_failed(tmp_path: Path) -> None:
    run = scheduled_run()

    handle_flow_run_message(file_message(run, tmp_path / "gone.py", "crash"))

    state = final_state(run)
    assert state.type == StateType.FAILED
    assert "no such file" in state.message


@pytest.mark.usefixtures("redis_store")
def test_a_target_that_is_not_a_flow_ends_failed(tmp_path: Path) -> None:
    path = write(tmp_path, "def plain():\n    return 1\n")
    run = scheduled_run()

    handle_flow_run_message(file_message(run, path, "plain"))

    state = final_state(run)
    assert state.type == StateType.FAILED
    assert "is not a flow" in state.message


@pytest.mark.usefixtures("redis_store")
def test_a_flow_that_raises_on_import_ends_failed(tmp_path: Path) -> None:
    path = write(tmp_path, "raise RuntimeError('broken module')\n")
    run = scheduled_run()

    handle_flow_run_message(file_message(run, path, "anything"))

    state = final_state(run)
    assert state.type == StateType.FAILED
    assert "broken module" in state.message


@pytest.mark.usefixtures("redis_store")
def test_a_duplicate_delivery_of_a_final_run_does_nothing(tmp_path: Path) -> None:
    run = scheduled_run()
    handle_flow_run_message(file_message(run, tmp_path / "gone.py", "crash"))
    history = get_store().read_state_history(run.id)

    handle_flow_run_message(file_message(run, tmp_path / "gone.py", "crash"))

    assert get_store().read_state_history(run.id) == history


def test_submitting_a_flow_that_cannot_be_imported_is_refused(redis_url: str,
                                                               monkeypatch) -> None:
    use_broker(monkeypatch, redis_url)

    @flow
    def local_flow() -> int:
        return 1

    with pytest.raises(SubmissionError, match="coordinator must import it"):
        submit_flow_run(local_flow)


def test_parameters_must_be_json(redis_url: str, monkeypatch, tmp_path: Path) -> None:
    use_broker(monkeypatch, redis_url)

    with pytest.raises(SubmissionError, match="JSON-serializable"):
        submit_flow_run(f"{tmp_path}/x.py:f", {"when": object()})
