"""Running a flow in a spawned process with the serialized context.

The child runs the flow against the same store when the store is shared
(Redis). With the in-memory store the child has its own memory, so it sends its
records back in a file that ``join()`` copies into this process's store; either
way the result is then read back through the store.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import cloudpickle

from engine.context import serialize_context
from engine.results import loads_verified
from engine.schemas import FlowRun
from engine.signing import current_signer
from engine.states import Pending, State
from engine.store import get_store
from engine.store.base import RunStore
from engine.utilities.importing import from_reference, to_reference
from engine.utilities.parent_death import die_with_parent


class FlowRunProcess(SpawnProcess):
    """A spawned process running one flow run; ``join()`` brings its records home."""

    flow_run_id: uuid.UUID
    export_path: str | None = None

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.exitcode is not None and self.export_path:
            _import_export(Path(self.export_path), get_store())
            self.export_path = None


def run_flow_in_subprocess(
    flow: Any,
    flow_run: FlowRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Any = None,
    context: dict[str, Any] | None = None,
    env: dict[str, str | None] | None = None,
) -> FlowRunProcess:
    """Start ``flow`` in a spawned process and return the (started) process.

    ``env`` sets environment variables in the child before it runs anything
    (a None value removes the variable). After ``process.join()``,
    ``read_subprocess_result(process)`` gives the final state.
    """
    from engine.flow_engine import jsonable_parameters

    parameters = dict(parameters or {})
    context = context or serialize_context()
    if flow_run is None:
        state = Pending()
        flow_run = FlowRun(
            name=flow.resolve_run_name(parameters, uuid.uuid4()),
            flow_name=flow.name,
            flow_version=flow.version,
            parameters=jsonable_parameters(parameters),
            # the tags the child would apply: the context's and the flow's own
            tags=sorted(set(context.get("tags") or ()) | set(flow.tags)),
            state=state,
        )
        state.state_details.flow_run_id = flow_run.id
        get_store().create_flow_run(flow_run)
    shared = not get_store().url.startswith("memory://")
    export_path = None if shared else _private_file()
    payload = cloudpickle.dumps(
        {
            "flow": to_reference(flow),
            "flow_run": flow_run.model_dump(mode="json"),
            "parameters": parameters,
            "context": context,
            "export": export_path,
            "env": dict(env or {}),
        }
    )
    process = FlowRunProcess(
        target=_child_main, args=(payload, os.getpid()), name=f"celerity-flow-{flow_run.id}"
    )
    process.flow_run_id = flow_run.id
    process.export_path = export_path
    process.start()
    return process


def read_subprocess_result(process: FlowRunProcess) -> State[Any] | None:
    """The final state of the process's flow run (after ``join()``), from the store."""
    if process.exitcode is None:
        process.join()
    return get_store().read_flow_run(process.flow_run_id).state


def _child_main(payload: bytes, parent_pid: int) -> None:
    # Before anything slow (unpickling imports the flow's module): a child whose
    # parent (a coordinator) died would run on unsupervised.
    die_with_parent(parent_pid)
    from engine.context import hydrated_context
    from engine.flow_engine import run_flow_to_state

    job = cloudpickle.loads(payload)
    _apply_env(job.get("env") or {})
    flow = from_reference(job["flow"])
    flow_run = FlowRun.model_validate(job["flow_run"])
    context = {k: v for k, v in job["context"].items() if k not in ("flow_run", "task_run")}
    with hydrated_context(context):
        store = get_store()
        if job["export"]:
            store.create_flow_run(flow_run)
        try:
            run_flow_to_state(flow, job["parameters"], flow_run)
        finally:
            if job["export"]:
                exported = cloudpickle.dumps(_export(store, flow_run.id))
                Path(job["export"]).write_bytes(current_signer().sign(exported))


def _apply_env(env: dict[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _export(store: RunStore, flow_run_id: uuid.UUID) -> dict[str, Any]:
    task_runs = store.read_task_runs(flow_run_id)
    return {
        "flow_history": store.read_state_history(flow_run_id)[1:],
        "task_runs": [(run, store.read_state_history(run.id)) for run in task_runs],
        "logs": store.read_logs(flow_run_id),
    }


def _private_file() -> str:
    # Created here, readable by this user only; the child fills it and signs
    # what it writes, and this process verifies before unpickling.
    handle, path = tempfile.mkstemp(prefix="celerity-run-", suffix=".pkl")
    os.close(handle)
    return path


def _import_export(path: Path, store: RunStore) -> None:
    if not path.exists():
        return
    signed = path.read_bytes()
    path.unlink()
    if not signed:
        return  # the child ended before it could write anything
    data = loads_verified(signed, f"The records of flow run process export {path.name}")
    for state in data["flow_history"]:
        store.propose_state(state.state_details.flow_run_id, state, force=True)
    for run, history in data["task_runs"]:
        run.state = history[0] if history else None
        store.create_task_run(run)
        for state in history[1:]:
            store.propose_state(run.id, state, force=True)
    store.write_logs(data["logs"])


__all__ = ["FlowRunProcess", "run_flow_in_subprocess", "read_subprocess_result"]
