"""Store read-back helpers shared by the semantics tests."""

import time
import uuid


def _as_uuid(run_id) -> uuid.UUID:
    return run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))


def store():
    from engine.store import get_store

    return get_store()


def history(run_id) -> list:
    """Every state of a run, oldest first, read from the active run store."""
    return store().read_state_history(_as_uuid(run_id))


def names(run_id) -> list[str]:
    """The state names of a run's history, oldest first."""
    return [state.name for state in history(run_id)]


def types(run_id) -> list[str]:
    """The state type values (e.g. "RUNNING") of a run's history, oldest first."""
    return [state.type.value for state in history(run_id)]


def task_run(run_id):
    return store().read_task_run(_as_uuid(run_id))


def flow_run(run_id):
    return store().read_flow_run(_as_uuid(run_id))


def logs(flow_run_id) -> list:
    return store().read_logs(_as_uuid(flow_run_id))


def log_messages(flow_run_id) -> list[str]:
    return [log.message for log in logs(flow_run_id)]


def paused_run_id(flow_name: str, timeout: float = 20.0) -> uuid.UUID:
    """The id of the newest paused run of ``flow_name`` (another thread runs it: poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in store().list_flow_runs(limit=20):
            if run.flow_name == flow_name and run.state and run.state.is_paused():
                return run.id
        time.sleep(0.05)
    raise AssertionError(f"no paused run of {flow_name}")
