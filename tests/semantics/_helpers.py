"""Store read-back helpers shared by the semantics tests."""

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
