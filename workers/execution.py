"""The one generic Celery task: run the task runs an envelope carries.

An envelope is already verified by the serializer (see ``workers.envelope``)
when this runs. For each task run it unpacks the parameters, prefetches
upstream results in one round trip and calls ``begin_task_run`` (which
proposes RUNNING; a duplicate delivery does nothing). The Redis store appends
the completion event to the flow run's stream atomically with the final state.

Duplicates and lost workers: a run whose lease is held by another live worker
is sent back to the queue for later; a Running run whose lease lapsed (its
worker died) is taken over as a new attempt while retries remain, else it ends
Crashed. A run whose task or parameters cannot be loaded ends Failed with the
reason; nothing is left hanging.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery

from engine.exceptions import EnvelopeRejected, ObjectNotFound
from engine.results import INLINE, ResultStorage, read_result, storage_for_url
from engine.schemas import TaskRun
from engine.states import AwaitingRetry, Crashed, Failed, State
from engine.store import get_store
from engine.store.continuations import set_release_handler
from engine.task_engine import begin_task_run, worker_identity
from engine.utilities.importing import from_reference, load_import_path
from workers.envelope import unpack
from workers.upstream import resolve_upstream_refs

RUN_TASKS = "celerity.run_tasks"
STALE_MODULE_HINT = (
    " (a worker imports each module once: restart the workers after changing your files)"
)
# 2: entries carry only the run id and parameters; the worker reads the task run.
ENVELOPE_VERSION = 2

logger = logging.getLogger("celerity.worker")

Requeue = Callable[[list[dict[str, Any]]], None]


_app: Celery | None = None
_local = threading.local()


def register(app: Celery) -> None:
    """Register the task-run executor on ``app``; released runs are sent through it."""
    global _app
    _app = app
    set_release_handler(on_release)

    @app.task(name=RUN_TASKS, bind=True, acks_late=True, ignore_result=True)
    def run_tasks(self: Any, envelope: dict[str, Any]) -> int:
        queue = (self.request.delivery_info or {}).get("routing_key")

        def requeue_later(entries: list[dict[str, Any]]) -> None:
            delay = getattr(get_store(), "lease_seconds", 30.0)
            publish_envelope(app, {**envelope, "runs": entries}, countdown=delay)

        return run_with_continuations(envelope, queue, requeue_later)


def publish_envelope(app: Celery, envelope: dict[str, Any], countdown: float | None = None) -> None:
    """Send an envelope to its queue."""
    # A fixed argsrepr spares Celery a saferepr of the whole envelope.
    summary = f"<{len(envelope['runs'])} run(s) of {envelope['task'].get('name')}>"
    app.send_task(
        RUN_TASKS,
        args=[envelope],
        queue=envelope.get("queue"),
        countdown=countdown,
        argsrepr=summary,
        kwargsrepr="{}",
    )


def on_release(envelopes: list[bytes]) -> None:
    """Runs released by a run that just finished here: keep them for this worker, or send."""
    parsed = [json.loads(envelope) for envelope in envelopes]
    kept = getattr(_local, "continuations", None)
    if kept is not None:
        kept.extend(parsed)
    elif _app is not None:
        for envelope in parsed:
            publish_envelope(_app, envelope)


def run_with_continuations(
    envelope: dict[str, Any], queue: str | None, requeue_later: Requeue | None
) -> int:
    """Run ``envelope``, then whatever its runs released: one here, the rest sent on.

    Running the first released run in this process is what makes a chain hop
    as cheap as a function call; the others go back to the queue so that other
    workers share them.
    """
    released: list[dict[str, Any]] = []
    _local.continuations = released
    try:
        finished = execute_envelope(envelope, requeue_later)
        while released:
            batch = released[:]
            released.clear()
            here = [e for e in batch if e.get("queue") in (None, queue)][:1]
            for other in batch:
                if other not in here and _app is not None:
                    publish_envelope(_app, other)
            for continuation in here:
                finished += execute_envelope(continuation, requeue_later)
        return finished
    finally:
        _local.continuations = None


def execute_envelope(envelope: dict[str, Any], requeue_later: Requeue | None = None) -> int:
    """Run every task run in ``envelope``; returns how many reached a final state."""
    if envelope.get("v") != ENVELOPE_VERSION:
        raise EnvelopeRejected(f"Unknown envelope version {envelope.get('v')!r}.")
    context = envelope["context"]
    storage = _result_storage(context.get("result_storage"))
    runs = _skip_leased_elsewhere(envelope["runs"], requeue_later)
    try:
        task = _load_task(envelope["task"]["ref"])
    except Exception as exc:  # e.g. the worker cannot import the task's module
        reason = _with_hint(f"The worker could not load task {envelope['task'].get('name')!r}", exc)
        return sum(_fail_run(entry, reason) for entry in runs)
    return sum(_run_entry(task, entry, context, storage, requeue_later) for entry in runs)


def _skip_leased_elsewhere(
    runs: list[dict[str, Any]], requeue_later: Requeue | None
) -> list[dict[str, Any]]:
    # One MGET for the batch: the runs (so each first proposal skips its read)
    # and their leases (so a run another live worker holds is not touched).
    prime = getattr(get_store(), "prime", None)
    if prime is None:
        return runs
    holders = prime([uuid.UUID(entry["id"]) for entry in runs])
    me = worker_identity()
    busy = [e for e in runs if holders.get(uuid.UUID(e["id"])) not in (None, me)]
    if busy and requeue_later is not None:
        requeue_later(busy)
    return [entry for entry in runs if entry not in busy]


def _run_entry(
    task: Any,
    entry: dict[str, Any],
    context: dict[str, Any],
    storage: ResultStorage | None,
    requeue_later: Requeue | None,
) -> bool:
    try:
        task_run = _task_run_of(entry)
    except ObjectNotFound:
        logger.error("Task run %s is not in the run store (expired or deleted); skipped.",
                     entry["id"])
        return True
    try:
        parameters = resolve_upstream_refs(unpack(entry["parameters"]))
        prefetch_results(parameters)
    except Exception as exc:
        return _fail_run(entry, f"The worker could not load the task run's parameters: {exc!r}")
    state = _begin(task, task_run, parameters, context, storage)
    if state.is_running() and _lease_lapsed(task_run.id):
        if take_over(task_run, state, task.retries):
            state = _begin(task, task_run, parameters, context, storage)
    elif not state.is_final() and requeue_later is not None and not state.is_pending():
        requeue_later([entry])  # someone else holds it right now: look again later
    return state.is_final()


def _begin(
    task: Any,
    task_run: TaskRun,
    parameters: dict[str, Any],
    context: dict[str, Any],
    storage: ResultStorage | None,
) -> State[Any]:
    try:
        return begin_task_run(task, task_run, parameters, context, storage)
    except (KeyboardInterrupt, SystemExit) as exc:
        # Raised by the task's own code: the run is already Crashed in the
        # store; the worker process lives on to serve other runs.
        logger.error("Task run %s was interrupted by %s; it is Crashed.", task_run.id, exc)
        return get_store().read_task_run(task_run.id).state or Crashed()
    except Exception as exc:
        # Raised before the engine could record an outcome (e.g. the flow named
        # in the context cannot be loaded here): end the run with the reason,
        # or its future would wait forever.
        reason = _with_hint(f"The worker could not run task run {task_run.name!r}", exc)
        logger.exception(reason)
        return _propose(task_run, Failed(message=reason))


def _with_hint(what: str, exc: Exception) -> str:
    """``what: exc``, plus a hint to restart the workers when a name was not found."""
    reason = f"{what}: {exc!r}"
    return reason + STALE_MODULE_HINT if isinstance(exc, AttributeError) else reason


def _lease_lapsed(task_run_id: uuid.UUID) -> bool:
    lease_holder = getattr(get_store(), "lease_holder", None)
    return lease_holder is not None and lease_holder(task_run_id) is None


def take_over(task_run: TaskRun, current: State[Any], retries: int) -> bool:
    """Move an orphaned Running run to a new attempt (True) or to Crashed (False)."""
    lost = current.state_details.worker or "unknown"
    store = get_store()
    attempts = store.read_task_run(task_run.id).run_count
    if attempts <= retries:
        logger.warning("Worker %s was lost running %s; starting a new attempt.", lost, task_run.id)
        # No force: if the run moved on meanwhile (it finished after all),
        # the rules reject this and nothing is redone.
        retry = AwaitingRetry(message=f"Worker {lost} was lost; retrying.")
        return _propose(task_run, retry).id == retry.id
    logger.error("Worker %s was lost running %s; no retries left.", lost, task_run.id)
    _propose(task_run, Crashed(message=f"Worker {lost} was lost while running this task run."))
    return False


def _propose(task_run: TaskRun, state: State[Any], force: bool = False) -> State[Any]:
    state.state_details.task_run_id = task_run.id
    state.state_details.flow_run_id = task_run.flow_run_id
    outcome = get_store().propose_state(task_run.id, state, force=force)
    return outcome.state or state


def _fail_run(entry: dict[str, Any], reason: str) -> bool:
    logger.error(reason)
    try:
        _propose(_task_run_of(entry), Failed(message=reason))
    except ObjectNotFound:
        logger.error("Task run %s is not in the run store; nothing to fail.", entry["id"])
    return True


def _task_run_of(entry: dict[str, Any]) -> TaskRun:
    """The entry's task run as the store has it (primed for the whole message), stateless."""
    store = get_store()
    run_id = uuid.UUID(entry["id"])
    known = getattr(store, "known_task_run", None)
    task_run = (known(run_id) if known is not None else None) or store.read_task_run(run_id)
    # The engine starts from Pending and proposes Running; the stored state
    # only matters to the compare-and-set, which reads it itself.
    return task_run.model_copy(update={"state": None})


@functools.lru_cache(maxsize=256)
def _load_cached(path: str, file: str | None) -> Any:
    return load_import_path(path, file)


def _load_task(ref: dict[str, str]) -> Any:
    if "import_path" in ref:
        return _load_cached(ref["import_path"], ref.get("file"))
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
        ref = state.result_ref
        if ref.storage == INLINE:  # type: ignore[union-attr]
            state.data = read_result(ref)  # type: ignore[arg-type]
        else:
            by_storage.setdefault(ref.storage, []).append(state)  # type: ignore[union-attr]
    for url, group in by_storage.items():
        storage = storage_for_url(url)
        values = storage.read_many([s.result_ref for s in group])  # type: ignore[misc]
        for state, value in zip(group, values, strict=True):
            state.data = value
