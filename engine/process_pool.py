"""The pool process's side of ``ProcessPoolTaskRunner``: run one task run, send it back.

The parent sends a signed, cloudpickled job (the task, its run record, its
parameters with upstream futures replaced by their final states, and the
serialized run context); the child verifies it before unpickling, re-enters
the context and runs the task run with the ordinary engine. Its answer -- the
final state, and with the in-memory store the records the run made -- is
signed the same way, and the parent verifies it before unpickling.

With a shared store (Redis) the child records states where the parent reads
them. With the in-memory store each job runs against a fresh store of its own,
whose records (the run's state history, runs it submitted, logs) travel back
in the answer and are copied into the parent's store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudpickle

from engine.exceptions import ObjectNotFound
from engine.schemas import FlowRun, RunLog, TaskRun
from engine.signing import current_signer
from engine.states import State
from engine.store import get_store, set_store
from engine.store.base import RunStore
from engine.store.memory import MemoryRunStore


def pack_job(
    task: Any, task_run: TaskRun, parameters: dict[str, Any], context: dict[str, Any]
) -> bytes:
    """The signed job a pool process runs (see ``run_job``)."""
    job = {"task": task, "task_run": task_run, "parameters": parameters, "context": context}
    return current_signer().sign(cloudpickle.dumps(job))


def run_job(signed_job: bytes) -> bytes:
    """Run one job in a pool process; returns the signed answer for ``unpack_answer``."""
    from engine.context import hydrated_context
    from engine.task_engine import run_task

    job = _verified(signed_job, "A job sent to a process pool worker")
    task_run: TaskRun = job["task_run"]
    context: dict[str, Any] = job["context"]
    # Each job records into its own store when runs are kept in memory, so
    # that its answer carries this run's records and nothing older.
    local = context.get("store_url", "memory://").startswith("memory://")
    if local:
        _fresh_store(context, task_run)
    with hydrated_context(context):
        state = run_task(job["task"], job["parameters"], task_run, return_type="state")
    # Exported after the context closed: runs the task submitted are drained then.
    records = export_records(get_store(), task_run.flow_run_id) if local else None
    answer = {"state": state, "records": records}
    return current_signer().sign(cloudpickle.dumps(answer))


def unpack_answer(
    signed_answer: bytes,
    store: RunStore,
    process_logs: Callable[[list[RunLog]], list[RunLog]] | None = None,
) -> State[Any]:
    """The final state a pool process answered, after copying its records into ``store``.

    ``process_logs`` may change or drop the log lines the process sent back.
    """
    answer = _verified(signed_answer, "The answer of a process pool worker")
    records = answer["records"]
    if records is not None:
        if process_logs is not None:
            records["logs"] = process_logs(records["logs"])
        import_records(records, store)
    state: State[Any] = answer["state"]
    return state


def _verified(signed: bytes, what: str) -> Any:
    return cloudpickle.loads(current_signer().verify(signed, what))


def _fresh_store(context: dict[str, Any], task_run: TaskRun) -> None:
    store = MemoryRunStore()
    if "flow_run" in context:
        store.create_flow_run(FlowRun.model_validate(context["flow_run"]))
    store.create_task_run(task_run)
    set_store(store)


def export_records(store: RunStore, flow_run_id: Any) -> dict[str, Any]:
    """The task runs (with state histories) and logs of ``flow_run_id`` in ``store``."""
    task_runs = store.read_task_runs(flow_run_id)
    return {
        "task_runs": [(run, store.read_state_history(run.id)) for run in task_runs],
        "logs": store.read_logs(flow_run_id),
    }


def import_records(records: dict[str, Any], store: RunStore) -> None:
    """Copy exported records into ``store``: new runs are created, known runs get their states."""
    for run, history in records["task_runs"]:
        if not _known(store, run.id):
            run.state = history[0] if history else None
            store.create_task_run(run)
        # The first state is the Pending the run was created with, here and there.
        for state in history[1:]:
            store.propose_state(run.id, state, force=True)
    store.write_logs(records["logs"])


def _known(store: RunStore, run_id: Any) -> bool:
    try:
        store.read_task_run(run_id)
    except ObjectNotFound:
        return False
    return True


__all__ = ["pack_job", "run_job", "unpack_answer", "export_records", "import_records"]
