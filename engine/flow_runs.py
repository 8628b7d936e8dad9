"""Pausing and resuming flow runs, with typed run input.

``pause_flow_run`` moves the current flow run to Paused and blocks its
process until ``resume_flow_run`` (from any process sharing the store, e.g.
``celerity runs resume``) moves it back to Running, or until the timeout,
which fails the run. With ``wait_for_input`` the resumer must send data that
validates against that model, and the paused code receives it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from engine.context import FlowRunContext, TaskRunContext
from engine.exceptions import (
    CelerityException,
    FlowPauseTimeout,
    MissingContextError,
    NotPausedError,
)
from engine.input import Keyset, RunInput, input_model, keyset_from_paused_state
from engine.input.run_input import load_input, save_schema
from engine.states import Paused, Running, StateType
from engine.store import get_store
from engine.utilities.asyncutils import sync_compatible

# Status checks while paused: fast enough for a person or a test, light on Redis.
_POLL_SECONDS = 0.2


@sync_compatible
def pause_flow_run(
    wait_for_input: Any = None,
    timeout: int = 3600,
    poll_interval: int = 10,
    key: str | None = None,
) -> Any:
    """Pause the current flow run until it is resumed; returns the run input, if any.

    Raises FlowPauseTimeout (failing the run) when ``timeout`` seconds pass first.
    ``poll_interval`` is accepted for compatibility; status is checked every 0.2 s.
    In an async flow, ``await pause_flow_run(...)`` (it then waits in a thread).
    """
    flow_ctx = FlowRunContext.get()
    if flow_ctx is None:
        raise MissingContextError("pause_flow_run() must be called inside a flow run.")
    if TaskRunContext.get() is not None:
        raise CelerityException("Task runs cannot be paused; pause the flow run instead.")
    flow_run_id = flow_ctx.flow_run.id
    paused = Paused(timeout_seconds=timeout, pause_key=key or _next_pause_key(flow_ctx))
    keyset = keyset_from_paused_state(paused)
    model = input_model(wait_for_input) if wait_for_input is not None else None
    if model is not None:
        save_schema(model, keyset, flow_run_id)
    paused.state_details.flow_run_id = flow_run_id
    paused.state_details.run_input_keyset = keyset
    get_store().propose_state(flow_run_id, paused)
    _wait_until_resumed(flow_run_id, timeout)
    if model is None:
        return None
    return _received_input(flow_run_id, keyset, model)


def _next_pause_key(flow_ctx: FlowRunContext) -> str:
    # Counted per flow run, as Prefect does: the first pause's input is under paused-1-*.
    count = flow_ctx.__dict__.get("pause_count", 0) + 1
    flow_ctx.__dict__["pause_count"] = count
    return str(count)


def _wait_until_resumed(flow_run_id: uuid.UUID, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    store = get_store()
    while True:
        state = store.read_flow_run(flow_run_id).state
        if state is None or state.type != StateType.PAUSED:
            return
        if time.monotonic() >= deadline:
            raise FlowPauseTimeout(f"Flow run was not resumed within {timeout} second(s).")
        time.sleep(_POLL_SECONDS)  # polling: the resumer may be any process on the store


def _received_input(flow_run_id: uuid.UUID, keyset: Keyset, model: type[RunInput]) -> Any:
    try:
        return load_input(model, keyset, flow_run_id)
    except LookupError:
        raise CelerityException(
            "The flow run was resumed without the input it waits for."
        ) from None


@sync_compatible
def resume_flow_run(flow_run_id: uuid.UUID | str, run_input: dict[str, Any] | None = None) -> None:
    """Resume a paused flow run, sending ``run_input`` if it waits for input.

    Raises NotPausedError if the run is not paused, and ValueError if it waits
    for input and none (or input of the wrong shape) is given.
    """
    flow_run_id = uuid.UUID(str(flow_run_id))
    store = get_store()
    state = store.read_flow_run(flow_run_id).state
    if state is None or state.type != StateType.PAUSED:
        raise NotPausedError(f"Flow run {flow_run_id} is not paused (it is {state!r}).")
    keyset = state.state_details.run_input_keyset or {}
    schema = store.read_run_input(flow_run_id, keyset["schema"]) if keyset else None
    if schema is not None:
        _check_input(run_input, json.loads(schema))
        store.set_run_input(flow_run_id, keyset["response"], json.dumps(run_input))
    resumed = Running(message="Resumed")
    resumed.state_details.flow_run_id = flow_run_id
    store.propose_state(flow_run_id, resumed)


def _check_input(run_input: dict[str, Any] | None, schema: dict[str, Any]) -> None:
    if run_input is None:
        raise ValueError("This flow run waits for input: pass run_input matching its schema.")
    missing = [name for name in schema.get("required", []) if name not in run_input]
    unknown = [name for name in run_input if name not in schema.get("properties", {})]
    if missing or unknown:
        raise ValueError(
            f"Run input does not match the schema: missing {missing}, unknown {unknown}."
        )
    properties = schema.get("properties", {})
    wrong = [name for name, value in run_input.items() if not _fits(value, properties[name])]
    if wrong:
        details = ", ".join(f"{name!r} (got {run_input[name]!r})" for name in wrong)
        raise ValueError(f"Run input does not match the schema: wrong type for {details}.")


# JSON schema types, checked strictly as JSON validators do (``"3"`` is not an integer).
# By hand because the resumer (``celerity runs resume``, another process) has
# only the schema the paused run stored, not its model class, and the few
# top-level type checks needed do not warrant a JSON Schema dependency.
_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": (list, tuple),
    "object": dict,
    "null": type(None),
}


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` has a JSON type ``schema`` allows (refs and unknown types pass)."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return any(_fits(value, option) for option in options)
    wanted = schema.get("type")
    if wanted is None:
        return True
    for name in wanted if isinstance(wanted, list) else [wanted]:
        python_type = _JSON_TYPES.get(name)
        if python_type is None:
            return True
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, python_type):
            return True
    return False


class SuspendNotSupportedError(RuntimeError, CelerityException):
    """suspend_flow_run() was called: Celerity has no deployment to restart a run from."""


@sync_compatible
def suspend_flow_run(
    wait_for_input: Any = None,
    flow_run_id: uuid.UUID | str | None = None,
    timeout: int | None = 3600,
    key: str | None = None,
    client: Any = None,
) -> None:
    """Not supported: raises SuspendNotSupportedError (a RuntimeError), as Prefect does without a
    deployment. A suspended run's process exits and a deployment starts it again on resume;
    Celerity has no deployments. ``pause_flow_run()`` keeps the process waiting instead.
    """
    ctx = FlowRunContext.get()
    if flow_run_id is None:
        if TaskRunContext.get() is not None:
            raise SuspendNotSupportedError("Cannot suspend task runs.")
        if ctx is not None and ctx.flow_run.parent_task_run_id is not None:
            raise SuspendNotSupportedError("Cannot suspend subflows.")
    raise SuspendNotSupportedError(
        "Cannot suspend flows without a deployment. Celerity has no deployments to restart "
        "a suspended run from: use pause_flow_run(), which keeps the flow run's process waiting."
    )


__all__ = [
    "FlowPauseTimeout",
    "NotPausedError",
    "SuspendNotSupportedError",
    "pause_flow_run",
    "resume_flow_run",
    "suspend_flow_run",
]
