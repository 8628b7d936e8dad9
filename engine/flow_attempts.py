"""Attempts of a flow run: what running it again needs, and the task runs it reuses.

A flow run may run more than once: its own ``retries``, or ``retry_flow_run``
after it ended Failed or Crashed (its process was killed: a sweeper found its
lease lapsed). Each attempt calls the flow function again, in the same flow
run. A task run is identified within its flow run by its task key and dynamic
key (the n-th call of that task in the flow), as in Prefect; one that
completed in an earlier attempt is *reused*: its future completes at once with
the earlier state (its persisted result), and nothing is executed again.

To run an attempt in another process the flow run records, when it is
created, where its flow is imported from and its parameters exactly as given
(pickled, signed, by reference, on a shared store).
"""

from __future__ import annotations

import importlib
import time
import uuid
from typing import Any

from engine.exceptions import CelerityException, ObjectNotFound
from engine.schemas import FlowRun, TaskRun
from engine.states import AwaitingRetry, Crashed, State, StateType
from engine.store import get_store
from engine.store.base import RunStore, SharedRunStore

TaskIdentity = tuple[str, str]
# engine/ never imports workers/ (nor Celery) at import time.
FLEET_PRODUCER = "workers.producer"


class RetryRefused(CelerityException):
    """A flow run cannot be run again (it completed, is still running, or cannot be loaded)."""


# --- recording what another attempt needs -------------------------------------------------


def retry_fields(flow: Any, parameters: dict[str, Any], store: RunStore) -> dict[str, Any]:
    """FlowRun fields that let another process run this flow run again."""
    from engine.utilities.importing import import_path_of, module_file

    fields: dict[str, Any] = {}
    path = import_path_of(flow)
    if path is not None:
        file = module_file(flow)
        fields["flow_ref"] = {"import_path": path, **({"file": file} if file else {})}
    if isinstance(store, SharedRunStore):
        try:
            fields["parameters_ref"] = _parameters_storage().write(parameters)
        except CelerityException:
            pass  # unpicklable parameters: a retry then uses their JSON form
    return fields


def _parameters_storage() -> Any:
    from engine.config import current_settings
    from engine.results import shared_result_storage

    # Where the fleet keeps results, and as long: a retry reads them like one.
    return shared_result_storage(current_settings())


def parameters_for_attempt(flow_run: FlowRun) -> dict[str, Any]:
    """The parameters a new attempt of ``flow_run`` is called with."""
    if flow_run.parameters_ref is not None:
        from engine.results import read_result

        return dict(read_result(flow_run.parameters_ref))
    return dict(flow_run.parameters)


# --- reusing completed task runs ----------------------------------------------------------


def completed_task_runs(flow_run_id: uuid.UUID) -> dict[TaskIdentity, TaskRun]:
    """The task runs of a flow run that completed, by (task key, dynamic key)."""
    return {
        (run.task_key, run.dynamic_key): run
        for run in get_store().read_task_runs(flow_run_id)
        if run.state is not None and run.state.is_completed()
    }


def reusable_runs() -> dict[TaskIdentity, TaskRun]:
    """The task runs of earlier attempts of the current flow run that a call may reuse,
    by (task key, dynamic key); empty in a first attempt or outside a flow run."""
    from engine.context import FlowRunContext

    flow_ctx = FlowRunContext.get()
    return (flow_ctx.__dict__.get("reusable") or {}) if flow_ctx is not None else {}


def reusable_run(task_run: TaskRun) -> TaskRun | None:
    """The completed run of an earlier attempt that ``task_run`` (just built) stands for."""
    return reusable_runs().get((task_run.task_key, task_run.dynamic_key))


def start_attempt(flow_ctx: Any) -> None:
    """Prepare a flow run context for an attempt: dynamic keys count from 0 again, and a
    later attempt reuses the task runs that completed before."""
    flow_ctx.__dict__["dynamic_keys"] = {}
    later = flow_ctx.flow_run.run_count > 1
    flow_ctx.__dict__["reusable"] = completed_task_runs(flow_ctx.flow_run.id) if later else {}


# --- running a flow run again ---------------------------------------------------------------


def retry_flow_run(
    flow_run_id: uuid.UUID | str, *, wait: bool = True, timeout: float | None = None
) -> State[Any] | None:
    """Run a finished (Failed, Crashed, Cancelled) flow run again as a new attempt.

    The tasks that completed in earlier attempts are reused, not executed again.
    On a fleet the run goes back to the coordinators; with ``wait`` this returns
    its final state (else None at once). Embedded, it runs here and returns the
    final state. A run that is still Running is waited for while its lease lapses
    (its process may have just died); one whose process is alive is refused.
    """
    run_id = uuid.UUID(str(flow_run_id))
    store = get_store()
    flow_run = _retryable(store, run_id)
    if flow_run.flow_ref is None:
        raise RetryRefused(
            f"Flow run {run_id} cannot be retried: its flow is not importable by name "
            "(defined in __main__ or inside a function). Define it at the top level of a module."
        )
    if isinstance(store, SharedRunStore):
        producer = importlib.import_module(FLEET_PRODUCER)  # the fleet runs it
        producer.resubmit_flow_run(flow_run, reason="Retry requested.")
        return producer.wait_for_flow_run(run_id, timeout=timeout) if wait else None
    return _run_here(store, flow_run)


def _retryable(store: RunStore, run_id: uuid.UUID) -> FlowRun:
    try:
        flow_run = store.read_flow_run(run_id)
    except ObjectNotFound:
        raise RetryRefused(f"No flow run {run_id} in the run store.") from None
    state = flow_run.state
    if _started_unfinished(state) and isinstance(store, SharedRunStore):
        flow_run = _crash_once_lapsed(store, flow_run)
        state = flow_run.state
    if state is None or not state.is_final():
        raise RetryRefused(f"Flow run {run_id} is still {state.name if state else 'new'}.")
    if state.type == StateType.COMPLETED:
        raise RetryRefused(f"Flow run {run_id} already completed; there is nothing to retry.")
    return flow_run


def _started_unfinished(state: State[Any] | None) -> bool:
    # A Scheduled run has not been taken by anyone: it is waiting, not lost.
    return state is not None and state.type != StateType.SCHEDULED and not state.is_final()


def _crash_once_lapsed(store: SharedRunStore, flow_run: FlowRun) -> FlowRun:
    """Wait (at most a lease and a bit) for a running flow run's lease to lapse, then end it
    Crashed as a sweeper would; a run whose process keeps its lease is left alone."""
    deadline = time.monotonic() + store.lease_seconds * 1.5 + 1
    while store.lease_holder(flow_run.id) is not None:
        if time.monotonic() >= deadline:
            raise RetryRefused(
                f"Flow run {flow_run.id} is still running: its process renews its lease."
            )
        time.sleep(min(0.2, store.lease_seconds / 10))
    crash_flow_run(store, flow_run, lapsed_lease_reason(flow_run))
    return store.read_flow_run(flow_run.id)


def lapsed_lease_reason(flow_run: FlowRun) -> str:
    """The Crashed message of a flow run whose process stopped renewing its lease."""
    return (
        f"The process running flow run {flow_run.name!r} stopped renewing its lease "
        "(it was killed, or lost the run store). Its tasks that completed are kept: "
        f"`celerity runs retry {flow_run.id}` runs it again and reuses them."
    )


def crash_flow_run(
    store: SharedRunStore, flow_run: FlowRun, reason: str, *, force: bool = False
) -> bool:
    """End a flow run Crashed, and its unfinished task runs with it.

    Without ``force`` only a run whose lease has lapsed is ended, and only once:
    several sweepers may race and the store's compare-and-set lets one win.
    True for the caller that ended it.
    """
    crashed = Crashed(message=reason)
    crashed.state_details.flow_run_id = flow_run.id
    if force:
        store.propose_state(flow_run.id, crashed, force=True)
    elif not store.propose_if_unleased(flow_run.id, crashed):
        return False
    crash_unfinished_task_runs(store, flow_run.id, reason)
    return True


def crash_unfinished_task_runs(store: RunStore, flow_run_id: uuid.UUID, reason: str) -> None:
    """End Crashed the task runs of a crashed flow run that are not final yet: with
    their flow run's process gone, nothing would wait for them or send them again."""
    from engine.proposals import propose_task_run

    for task_run in store.read_task_runs(flow_run_id):
        if task_run.state is not None and not task_run.state.is_final():
            crashed_too = Crashed(message=f"Its flow run crashed: {reason}")
            propose_task_run(task_run, crashed_too, store=store)


def new_attempt_state(reason: str) -> State[Any]:
    """The state a finished flow run takes when it is sent to run again."""
    return AwaitingRetry(message=reason)


def _run_here(store: RunStore, flow_run: FlowRun) -> State[Any]:
    from engine.flow_engine import run_flow_to_state
    from engine.utilities.importing import from_reference

    flow = from_reference(flow_run.flow_ref)  # type: ignore[arg-type]
    waiting = new_attempt_state("Retry requested.")
    waiting.state_details.flow_run_id = flow_run.id
    store.propose_state(flow_run.id, waiting, force=True)
    flow_run = store.read_flow_run(flow_run.id)
    return run_flow_to_state(flow, parameters_for_attempt(flow_run), flow_run)


__all__ = [
    "RetryRefused",
    "completed_task_runs",
    "crash_flow_run",
    "retry_flow_run",
    "retry_fields",
    "reusable_run",
    "reusable_runs",
    "start_attempt",
]
