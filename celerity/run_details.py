"""What ``celerity runs ls|show`` report about runs, as plain JSON-ready dicts.

The text views (tables) and ``--json`` print the same facts; a script reads
the JSON, a person the tables.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from engine.schemas import FlowRun, RunBase, TaskRun
from engine.states import State, StateType
from engine.store.base import RunStore

# Where a failed state may keep its traceback, first found wins (the engine
# records it on the state; older records have none).
_TRACEBACK_FIELDS = ("traceback",)


def duration_seconds(run: RunBase) -> float | None:
    """How long a run ran: its total once final, the time so far while running, else None."""
    if run.start_time is None:
        return None
    if run.end_time is not None:
        return run.total_run_time or (run.end_time - run.start_time).total_seconds()
    return (datetime.datetime.now(datetime.UTC) - run.start_time).total_seconds()


def _time(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


def error_of(state: State[Any] | None) -> str | None:
    """A failed, crashed or cancelled state's message; None for any other state."""
    bad = (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED)
    if state is None or state.type not in bad:
        return None
    return state.message or state.name


def traceback_of(state: State[Any] | None) -> str | None:
    """The traceback a failed state keeps, if it keeps one."""
    if state is None:
        return None
    for holder in (state.state_details, state):
        for name in _TRACEBACK_FIELDS:
            value = getattr(holder, name, None)
            if isinstance(value, str) and value.strip():
                return value
    return None


def worker_of(run: RunBase) -> str | None:
    """The worker (``host:pid``) that ran it, as its state or its record says."""
    state = run.state
    return (state.state_details.worker if state is not None else None) or run.worker


def flow_run_summary(run: FlowRun) -> dict[str, Any]:
    """One flow run as ``runs ls --json`` lists it."""
    state = run.state
    return {
        "id": str(run.id),
        "name": run.name,
        "flow_name": run.flow_name,
        "state": state.name if state is not None else None,
        "state_type": state.type.value if state is not None else None,
        "message": state.message if state is not None else None,
        "created": _time(run.created),
        "start_time": _time(run.start_time),
        "end_time": _time(run.end_time),
        "duration_seconds": duration_seconds(run),
        "run_count": run.run_count,
        "tags": list(run.tags),
        "parent_flow_run_id": _text(run.parent_flow_run_id),
    }


def flow_run_detail(store: RunStore, run: FlowRun) -> dict[str, Any]:
    """One flow run as ``runs show --json`` prints it: the summary, its parameters, the
    input it waits for when paused, and each of its task runs."""
    return {
        **flow_run_summary(run),
        "parameters": run.parameters,
        "parent_task_run_id": _text(run.parent_task_run_id),
        "error": error_of(run.state),
        "traceback": traceback_of(run.state),
        "input_schema": input_schema(store, run),
        "task_runs": [task_run_detail(task_run) for task_run in store.read_task_runs(run.id)],
    }


def task_run_detail(run: TaskRun) -> dict[str, Any]:
    """One task run: its state, error and traceback, worker, duration, and subflow run."""
    state = run.state
    return {
        "id": str(run.id),
        "name": run.name,
        "task_key": run.task_key,
        "state": state.name if state is not None else None,
        "state_type": state.type.value if state is not None else None,
        "error": error_of(state),
        "traceback": traceback_of(state),
        "worker": worker_of(run),
        "start_time": _time(run.start_time),
        "end_time": _time(run.end_time),
        "duration_seconds": duration_seconds(run),
        "run_count": run.run_count,
        "child_flow_run_id": _text(state.state_details.child_flow_run_id if state else None),
    }


def input_schema(store: RunStore, run: FlowRun) -> dict[str, Any] | None:
    """The JSON schema of the input a paused flow run waits for, or None."""
    state = run.state
    if state is None or state.type != StateType.PAUSED:
        return None
    keyset = state.state_details.run_input_keyset or {}
    raw = store.read_run_input(run.id, keyset["schema"]) if "schema" in keyset else None
    return json.loads(raw) if raw else None


def is_value_wrapper(schema: dict[str, Any]) -> bool:
    """Whether the schema is the one-field model ``pause_flow_run(wait_for_input=<type>)``
    builds for a plain type (bool, int, str, ...): its input is ``{"value": ...}``."""
    properties = schema.get("properties") or {}
    return str(schema.get("title", "")).endswith("AutomaticRunInput") and list(properties) == [
        "value"
    ]


def input_example(schema: dict[str, Any]) -> str:
    """What ``--input`` takes for a schema, e.g. ``true`` or ``{"approved": <boolean>}``."""
    properties = schema.get("properties") or {}
    if is_value_wrapper(schema):
        return f"<{_type_name(properties['value'])}>"
    fields = ", ".join(f'"{name}": <{_type_name(spec)}>' for name, spec in properties.items())
    return "{" + fields + "}"


def _type_name(spec: dict[str, Any]) -> str:
    options = spec.get("anyOf") or spec.get("oneOf")
    if options:
        return " | ".join(_type_name(option) for option in options)
    kind = spec.get("type")
    return " | ".join(kind) if isinstance(kind, list) else str(kind or "any")
