"""The coordinator daemon's Celery task: take a submitted flow run and run it.

A producer (``workers.producer.submit_flow_run``) records a Scheduled flow run
in the store and publishes one message to the flow queue::

    {"flow_run_id": "<uuid>",
     "flow": {"import_path": "pkg.mod:my_flow"} | {"file": "/abs/flows.py", "function": "my_flow"},
     "parameters": {...JSON...}}

A coordinator (a Celery worker consuming only the flow queue, threads pool)
loads the flow and runs it in a spawned child process, so that a flow that
crashes its interpreter cannot take the coordinator down. Whatever happens, the
run ends final: a loading error becomes Failed, a child that exits without a
final state becomes Crashed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from engine.exceptions import EnvelopeRejected, ObjectNotFound
from engine.flow_attempts import crash_flow_run
from engine.leases import lease_keeper, worker_identity
from engine.schemas import FlowRun
from engine.states import Crashed, Failed, Pending, State, StateType
from engine.store import get_store
from engine.store.base import RunStore, SharedRunStore
from workers.protocol import FlowRunMessage

RUN_FLOW_TASK = "celerity.run_flow"

logger = logging.getLogger("celerity.coordinator")

# Loading a file registers a module in sys.modules; threads of one coordinator
# must not race on that.
_load_lock = threading.Lock()

# A redelivered message for a run in any other state is a duplicate.
_STARTABLE = (StateType.SCHEDULED, StateType.PENDING)


class FlowLoadError(Exception):
    """The flow named by a message could not be loaded; the message says why."""


def register(app: Any) -> Any:
    """Register the flow-run task (``celerity.run_flow``) on a Celery app and return it."""

    @app.task(name=RUN_FLOW_TASK, acks_late=True, ignore_result=True)
    def run_flow(body: Any) -> None:
        try:
            message = FlowRunMessage.from_json(body)
        except EnvelopeRejected as exc:
            logger.warning("Dropped a message on the flow queue: %s", exc)
            return
        handle_flow_run_message(message)

    return run_flow


def handle_flow_run_message(message: FlowRunMessage) -> None:
    """Run the flow run a message names to a final state (never raises for run errors)."""
    flow_run = _read_flow_run(message)
    if flow_run is None:
        return
    try:
        flow = load_flow(message.flow)
    except FlowLoadError as exc:
        _finish(flow_run.id, Failed(message=f"Could not load the flow: {exc}"))
        return
    try:
        with lease_keeper.holding(get_store(), flow_run.id):
            exitcode = _run_in_child(flow, flow_run, _parameters(flow_run, message))
    except Exception as exc:
        logger.exception("Flow run %s could not be started", flow_run.id)
        _finish(flow_run.id, Crashed(message=f"The flow run process could not start: {exc!r}"))
        return
    _ensure_final(flow_run.id, exitcode)


def _parameters(flow_run: FlowRun, message: FlowRunMessage) -> dict[str, Any]:
    if flow_run.parameters_ref is not None:  # as given in Python, signed
        from engine.flow_attempts import parameters_for_attempt

        return parameters_for_attempt(flow_run)
    return dict(message.parameters)


def _read_flow_run(message: FlowRunMessage) -> FlowRun | None:
    try:
        flow_run = get_store().read_flow_run(message.flow_run_id)
    except ObjectNotFound as exc:
        logger.error("Dropped a flow-run message with no known flow run (%r): %s", exc, message)
        return None
    state = flow_run.state
    if state is None or state.type not in _STARTABLE or not _take(flow_run):
        shown = state.name if state is not None else "unknown"
        logger.warning(
            "Flow run %s is already %s (or taken); ignoring a duplicate delivery.",
            flow_run.id,
            shown,
        )
        return None
    return flow_run


def _take(flow_run: FlowRun) -> bool:
    """Lease the flow run to this coordinator; False if another one holds it.

    From here on the run is in a live process's hands: if this coordinator dies
    before the run finishes (even before its child started), the lease lapses
    and the fleet's sweep ends it Crashed, instead of it waiting for the
    broker's visibility timeout.
    """
    store = get_store()
    if not isinstance(store, SharedRunStore):
        return True
    taken = Pending(message=f"Taken by coordinator {worker_identity()}.")
    taken.state_details.flow_run_id = flow_run.id
    taken.state_details.worker = worker_identity()
    return store.propose_if_unleased(flow_run.id, taken)


def load_flow(target: dict[str, Any]) -> Any:
    """The Flow a message's ``flow`` field names; raises FlowLoadError with the reason."""
    from engine.flows import Flow

    with _load_lock:
        obj = _load_object(target)
    if not isinstance(obj, Flow):
        raise FlowLoadError(f"{_describe(target)} is not a flow (decorate it with @flow)")
    return obj


def _load_object(target: dict[str, Any]) -> Any:
    from celerity.loading import LoadError, load_target
    from engine.utilities.importing import load_import_path

    try:
        if "import_path" in target:
            return load_import_path(str(target["import_path"]), target.get("file"))
        if "file" in target and "function" in target:
            return load_target(f"{target['file']}:{target['function']}")
    except LoadError as exc:
        raise FlowLoadError(str(exc)) from None
    except Exception as exc:  # an import error, or the user's module raising on import
        raise FlowLoadError(f"importing {_describe(target)} raised {exc!r}") from None
    raise FlowLoadError(f"the message names no flow (import_path or file+function): {target!r}")


def _describe(target: dict[str, Any]) -> str:
    if "import_path" in target:
        return str(target["import_path"])
    return f"{target.get('file')}:{target.get('function')}"


def _run_in_child(flow: Any, flow_run: FlowRun, parameters: dict[str, Any]) -> int | None:
    from engine.flow_engine import run_flow_in_subprocess

    logger.info("Running flow run %s (%s) of flow %r", flow_run.id, flow_run.name, flow.name)
    process = run_flow_in_subprocess(flow, flow_run=flow_run, parameters=parameters)
    process.join()
    return process.exitcode



def _ensure_final(flow_run_id: uuid.UUID, exitcode: int | None) -> None:
    store = get_store()
    try:
        state = store.read_flow_run(flow_run_id).state
    except ObjectNotFound:
        logger.error("Flow run %s is no longer in the run store (Redis lost it?).", flow_run_id)
        return
    if state is not None and state.is_final():
        logger.info("Flow run %s finished: %s", flow_run_id, state.name)
        if state.is_crashed():  # e.g. the child took a SIGTERM: retried as if killed
            _retry_crashed(store, flow_run_id)
        return
    reached = state.name if state is not None else "no state"
    reason = (
        f"The flow run process {_exit_text(exitcode)} before the run reached "
        f"a final state (it was {reached})."
    )
    logger.error("Flow run %s: %s", flow_run_id, reason)
    if isinstance(store, SharedRunStore):
        crash_flow_run(store, store.read_flow_run(flow_run_id), reason, force=True)
        _retry_crashed(store, flow_run_id)
    else:
        _finish(flow_run_id, Crashed(message=reason))


def _retry_crashed(store: RunStore, flow_run_id: uuid.UUID) -> None:
    """A crashed run goes back to the coordinators if its flow has retries left (a
    fleet's store only: an in-memory run cannot be sent anywhere)."""
    if isinstance(store, SharedRunStore):
        from workers.sweeper import retry_if_allowed  # it loads flows through this module

        retry_if_allowed(store, flow_run_id)


def _exit_text(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by signal {-exitcode} (exit code {exitcode})"
    return f"ended with exit code {exitcode}"


def _finish(flow_run_id: uuid.UUID, state: State[Any]) -> None:
    state.state_details.flow_run_id = flow_run_id
    logger.error("Flow run %s: %s", flow_run_id, state.message)
    get_store().propose_state(flow_run_id, state, force=True)


__all__ = ["RUN_FLOW_TASK", "FlowLoadError", "handle_flow_run_message", "load_flow", "register"]
