"""Runs, states and log lines as the JSON the dashboard's API returns."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

from pydantic_core import to_jsonable_python

from celerity.run_details import duration_seconds, traceback_of, worker_of
from engine.schemas import FlowRun, RunBase, RunLog, TaskRun
from engine.states import State

# Task inputs name their upstream runs by id, possibly inside a longer reference.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data; what JSON cannot hold becomes its repr."""
    return to_jsonable_python(value, fallback=repr)


def iso(value: datetime.datetime | None) -> str | None:
    """A timestamp as ISO 8601 (UTC offset included), or None."""
    return value.isoformat() if value is not None else None


def state_json(state: State[Any] | None) -> dict[str, Any] | None:
    """A state's type, name, message, time and its non-empty details."""
    if state is None:
        return None
    details = state.state_details.model_dump(
        mode="json", exclude_none=True, exclude_defaults=True, exclude={"traceback"}
    )
    return {
        "type": state.type.value,
        "name": state.name,
        "message": state.message,
        "timestamp": iso(state.timestamp),
        "details": details,
    }


def _run_fields(run: RunBase) -> dict[str, Any]:
    state = run.state
    return {
        "id": str(run.id),
        "name": run.name,
        "state": state_json(state),
        "final": bool(state is not None and state.is_final()),
        "traceback": traceback_of(state),
        "tags": list(run.tags),
        "run_count": run.run_count,
        "created": iso(run.created),
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "duration": duration_seconds(run),
        "worker": worker_of(run),
    }


def flow_run_json(run: FlowRun) -> dict[str, Any]:
    """A flow run's summary, parameters and links to its parent."""
    fields = _run_fields(run)
    fields.update(
        flow_name=run.flow_name,
        parameters=jsonable(run.parameters),
        parent_flow_run_id=_text(run.parent_flow_run_id),
        parent_task_run_id=_text(run.parent_task_run_id),
    )
    return fields


def task_run_json(run: TaskRun, known: set[str]) -> dict[str, Any]:
    """A task run's summary with its upstream task runs among ``known`` ids."""
    fields = _run_fields(run)
    child = run.state.state_details.child_flow_run_id if run.state is not None else None
    fields.update(
        task_key=run.task_key,
        dynamic_key=run.dynamic_key,
        upstreams=upstream_ids(run, known),
        child_flow_run_id=_text(child),
    )
    return fields


def upstream_ids(run: TaskRun, known: set[str]) -> list[str]:
    """The ids of the task runs (among ``known``) whose results or completion ``run`` waits
    for, as its task inputs record them, each once."""
    found: dict[str, None] = {}
    for references in run.task_inputs.values():
        for reference in references:
            for match in _UUID.findall(str(reference)):
                if match.lower() in known and match.lower() != str(run.id):
                    found[match.lower()] = None
    return list(found)


def log_json(log: RunLog) -> dict[str, Any]:
    """One log line with every field the store keeps; its message may span lines (a
    traceback)."""
    return log.model_dump(mode="json")


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None
