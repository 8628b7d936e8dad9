"""The producer API: submit flow runs to coordinators and wait for their outcome.

Example::

    from workers import submit_flow_run, wait_for_flow_run

    run_id = submit_flow_run("/srv/flows/etl.py:etl", {"day": "2024-01-01"})
    state = wait_for_flow_run(run_id, timeout=600)
    print(state.name, state.result(raise_on_failure=False))
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from broker_config.settings import CeleritySettings, get_settings
from engine.exceptions import CelerityException, ConfigurationError
from engine.schemas import FlowRun
from engine.signing import fleet_signer
from engine.states import Failed, Scheduled, State, StateType
from engine.store import get_store, store_for_url
from engine.store.base import RunStore
from workers.coordinator import RUN_FLOW_TASK
from workers.protocol import FlowRunMessage

# A run still Scheduled this long after submission has not been taken by any
# coordinator: a waiting producer says so, once (the run waits on: one may start).
NO_COORDINATOR_SECONDS = 5.0

logger = logging.getLogger("celerity.producer")


def unclaimed_warning(flow_run_id: uuid.UUID, waited: float) -> str:
    """What a producer waiting for a run that no coordinator took says."""
    return (
        f"Flow run {flow_run_id} is still Scheduled after {waited:.0f}s: no coordinator has "
        "taken it. Is a coordinator running on this Redis (`celerity coordinator start`, or "
        "`celerity dev`)? Still waiting."
    )


class SubmissionError(CelerityException):
    """A flow run could not be submitted (not importable, bad parameters, ...)."""


def submit_flow_run(
    flow_or_target: Any,
    parameters: dict[str, Any] | None = None,
    *,
    settings: CeleritySettings | None = None,
) -> uuid.UUID:
    """Record a Scheduled flow run and publish it to the flow queue; return its id.

    ``flow_or_target`` is a Flow object that a coordinator can import (defined
    at the top level of a module on its path) or a ``"FILE:FUNC"`` string whose
    file the coordinator can read at the same absolute path. ``parameters``
    must be JSON-serializable: they travel in the message and the store.
    """
    settings = settings or get_settings()
    if not settings.broker_url:
        raise ConfigurationError("CELERITY_BROKER_URL is not set: submitting needs a Redis URL.")
    fleet_signer(settings)  # refuse before recording a run that nobody could start
    parameters = _json_parameters(parameters or {})
    target, flow_name, flow = _flow_target(flow_or_target)
    store = _store(settings)
    flow_run = store.create_flow_run(_new_flow_run(flow_name, flow, parameters, target))
    _publish(store, settings, flow_run.id, _message(flow_run))
    return flow_run.id


def resubmit_flow_run(
    flow_run: FlowRun, reason: str, *, settings: CeleritySettings | None = None
) -> None:
    """Send a finished flow run back to the coordinators as a new attempt of the same run.

    The attempt reuses the task runs that completed before (see
    ``engine.flow_attempts``). ``flow_run`` must carry its ``flow_ref``.
    """
    from engine.flow_attempts import new_attempt_state

    settings = settings or get_settings()
    store = _store(settings)
    waiting = new_attempt_state(reason)
    waiting.state_details.flow_run_id = flow_run.id
    store.propose_state(flow_run.id, waiting, force=True)
    _publish(store, settings, flow_run.id, _message(flow_run))


def _message(flow_run: FlowRun) -> FlowRunMessage:
    return FlowRunMessage(flow_run.id, flow_run.flow_ref or {}, flow_run.parameters)


def wait_for_flow_run(
    flow_run_id: uuid.UUID | str,
    timeout: float | None = None,
    poll: float = 0.2,
    *,
    settings: CeleritySettings | None = None,
) -> State[Any]:
    """Block until the flow run is final and return its final state.

    This polls the run store: a producer may run anywhere (a web app, a cron
    job on another host) and holds no listener or event stream of its own, and
    one small read per ``poll`` seconds is cheap for Redis. Raises TimeoutError
    after ``timeout`` seconds (None waits forever). Logs a warning (logger
    ``celerity.producer``) once if no coordinator takes the run within
    ``NO_COORDINATOR_SECONDS``.
    """
    run_id = uuid.UUID(str(flow_run_id))
    store = _store(settings or get_settings())
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    warned = False
    while True:
        state = store.read_flow_run(run_id).state
        if state is not None and state.is_final():
            return state
        waited = time.monotonic() - started
        if not warned and waited >= NO_COORDINATOR_SECONDS and _unclaimed(state):
            warned = True
            logger.warning(unclaimed_warning(run_id, waited))
        if deadline is not None and time.monotonic() >= deadline:
            shown = state.name if state is not None else "no state"
            raise TimeoutError(f"Flow run {run_id} is not final after {timeout}s (it is {shown}).")
        time.sleep(poll)


def _unclaimed(state: State[Any] | None) -> bool:
    return state is not None and state.type == StateType.SCHEDULED


def _store(settings: CeleritySettings) -> RunStore:
    url = settings.effective_store_url
    if settings is get_settings() or not url:
        return get_store()
    return store_for_url(url)


def _json_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(parameters))  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        raise SubmissionError(f"Flow run parameters must be JSON-serializable: {exc}") from None


def _flow_target(flow_or_target: Any) -> tuple[dict[str, str], str, Any]:
    """The message's ``flow`` field, the flow name, and the Flow object (None for FILE:FUNC)."""
    if isinstance(flow_or_target, str):
        return (*_file_target(flow_or_target), None)
    from engine.flows import Flow
    from engine.utilities.importing import import_path_of, module_file

    if not isinstance(flow_or_target, Flow):
        raise SubmissionError(f"Expected a flow or 'FILE:FUNC', got {flow_or_target!r}.")
    path = import_path_of(flow_or_target)
    if path is None:
        raise SubmissionError(
            f"Flow {flow_or_target.name!r} cannot be imported by name (defined in __main__ or "
            "inside a function), and a coordinator must import it: define it at the top level "
            "of a module on the coordinators' path, or submit it as 'FILE:FUNC'."
        )
    # The file lets a coordinator started elsewhere on this host import it too.
    file = module_file(flow_or_target)
    target = {"import_path": path, "file": file} if file else {"import_path": path}
    return target, flow_or_target.name, flow_or_target


def _file_target(target: str) -> tuple[dict[str, str], str]:
    from celerity.loading import LoadError, declared_flow_name, split_target

    try:
        path, function = split_target(target)
    except LoadError as exc:
        raise SubmissionError(str(exc)) from None
    path = path.resolve()
    if not path.is_file():
        raise SubmissionError(f"no such file: {path}")
    return {"file": str(path), "function": function}, declared_flow_name(path, function)


def _new_flow_run(
    flow_name: str, flow: Any, parameters: dict[str, Any], target: dict[str, str]
) -> FlowRun:
    from engine.flows import generate_run_name

    state = Scheduled()
    run = FlowRun(
        name=generate_run_name(),
        flow_name=flow_name,
        flow_version=getattr(flow, "version", None),
        parameters=parameters,
        tags=sorted(getattr(flow, "tags", None) or []),
        state=state,
        flow_ref=target,
    )
    state.state_details.flow_run_id = run.id
    return run


def _publish(
    store: RunStore, settings: CeleritySettings, flow_run_id: uuid.UUID, message: FlowRunMessage
) -> None:
    from workers.app import get_app

    try:
        app = get_app(settings)
        app.send_task(RUN_FLOW_TASK, args=[message.to_json()], queue=settings.flow_queue)
    except Exception as exc:
        # The run must not stay Scheduled forever when nobody will ever pick it up.
        failed = Failed(message=f"The flow run could not be published to the broker: {exc}")
        failed.state_details.flow_run_id = flow_run_id
        store.propose_state(flow_run_id, failed, force=True)
        raise


__all__ = [
    "NO_COORDINATOR_SECONDS",
    "SubmissionError",
    "resubmit_flow_run",
    "submit_flow_run",
    "unclaimed_warning",
    "wait_for_flow_run",
]
