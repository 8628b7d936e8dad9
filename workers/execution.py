"""The one generic Celery task: run the task runs an envelope carries.

An envelope is already verified by the serializer (see ``workers.envelope``)
when this runs. For each task run it unpacks the parameters, prefetches
upstream results in one round trip and calls ``begin_task_run`` (which
proposes RUNNING; a duplicate delivery does nothing). The Redis store appends
the completion event to the flow run's stream atomically with the final state.
A run whose task or parameters cannot be loaded ends Failed with the reason;
nothing is left hanging.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

from celery import Celery

from engine.exceptions import EnvelopeRejected
from engine.results import ResultStorage, storage_for_url
from engine.schemas import TaskRun
from engine.states import Failed, State
from engine.store import get_store
from engine.task_engine import begin_task_run
from engine.utilities.importing import from_reference
from workers.envelope import unpack

RUN_TASKS = "celerity.run_tasks"
ENVELOPE_VERSION = 1

logger = logging.getLogger("celerity.worker")


def register(app: Celery) -> None:
    """Register the task-run executor on ``app``."""

    @app.task(name=RUN_TASKS, acks_late=True, ignore_result=True)
    def run_tasks(envelope: dict[str, Any]) -> int:
        return execute_envelope(envelope)


def execute_envelope(envelope: dict[str, Any]) -> int:
    """Run every task run in ``envelope``; returns how many reached a final state."""
    if envelope.get("v") != ENVELOPE_VERSION:
        raise EnvelopeRejected(f"Unknown envelope version {envelope.get('v')!r}.")
    context = envelope["context"]
    storage = _result_storage(context.get("result_storage"))
    runs = envelope["runs"]
    _prime_store([entry["task_run"]["id"] for entry in runs])
    try:
        task = _load_task(envelope["task"]["ref"])
    except Exception as exc:  # e.g. the worker cannot import the task's module
        reason = f"The worker could not load task {envelope['task'].get('name')!r}: {exc!r}"
        return sum(_fail_run(entry, reason, context) for entry in runs)
    return sum(_run_entry(task, entry, context, storage) for entry in runs)


def _run_entry(
    task: Any, entry: dict[str, Any], context: dict[str, Any], storage: ResultStorage | None
) -> bool:
    task_run = TaskRun.model_validate(entry["task_run"])
    try:
        parameters = unpack(entry["parameters"])
        prefetch_results(parameters)
    except Exception as exc:
        return _fail_run(
            entry, f"The worker could not load the task run's parameters: {exc!r}", context
        )
    try:
        state = begin_task_run(task, task_run, parameters, context, storage)
    except (KeyboardInterrupt, SystemExit) as exc:
        # Raised by the task's own code: the run is already Crashed in the
        # store; the worker process lives on to serve other runs.
        logger.error(
            "Task run %s was interrupted by %s; it is Crashed.", task_run.id, type(exc).__name__
        )
        return True
    return state.is_final()


def _fail_run(entry: dict[str, Any], reason: str, context: dict[str, Any]) -> bool:
    logger.error(reason)
    task_run = TaskRun.model_validate(entry["task_run"])
    state = Failed(message=reason)
    state.state_details.task_run_id = task_run.id
    state.state_details.flow_run_id = task_run.flow_run_id
    get_store().propose_state(task_run.id, state)
    return True


def _prime_store(run_ids: list[str]) -> None:
    # One MGET for the batch, so that each run's first proposal skips its read.
    prime = getattr(get_store(), "prime", None)
    if prime is not None:
        prime([uuid.UUID(run_id) for run_id in run_ids])


@functools.lru_cache(maxsize=256)
def _load_cached(path: str) -> Any:
    return from_reference({"import_path": path})


def _load_task(ref: dict[str, str]) -> Any:
    if "import_path" in ref:
        return _load_cached(ref["import_path"])
    return from_reference(ref)


def _result_storage(url: str | None) -> ResultStorage | None:
    return storage_for_url(url) if url else None


def prefetch_results(parameters: Any) -> None:
    """Load every upstream value the parameters reference, one round trip per storage."""
    from engine.utilities.collections import collect

    states = collect(
        parameters,
        lambda item: isinstance(item, State) and item.result_ref and not item.has_loaded_data(),
    )
    by_storage: dict[str, list[State[Any]]] = {}
    for state in states:
        by_storage.setdefault(state.result_ref.storage, []).append(state)  # type: ignore[union-attr]
    for url, group in by_storage.items():
        storage = storage_for_url(url)
        values = storage.read_many([s.result_ref for s in group])  # type: ignore[misc]
        for state, value in zip(group, values, strict=True):
            state.data = value
