"""The one generic Celery task: run the task runs an envelope carries.

An envelope is already verified by the serializer (see ``workers.envelope``)
when this runs. The worker first *claims* the message's runs (one round trip:
it reads them and leases the ones nobody holds, so that a coordinator knows
they are in a live worker's hands), then for each task run unpacks the
parameters, prefetches upstream results and calls ``begin_task_run`` (which
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
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu.serialization import loads as kombu_loads

from broker_config.celery_config import ENVELOPE_CONTENT_TYPE
from engine.exceptions import EnvelopeRejected, ObjectNotFound
from engine.leases import lease_keeper, worker_identity
from engine.proposals import propose_task_run_state
from engine.results import INLINE, ResultStorage, read_result, storage_for_url
from engine.schemas import TaskRun
from engine.states import AwaitingRetry, Crashed, Failed, State
from engine.store import get_store
from engine.store.base import SharedRunStore
from engine.task_engine import begin_task_run
from engine.utilities.importing import from_reference, load_import_path
from workers.envelope import unpack
from workers.protocol import Envelope, RunEntry
from workers.upstream import resolve_upstream_refs

RUN_TASKS = "celerity.run_tasks"
STALE_MODULE_HINT = (
    " (a worker imports each module once: restart the workers after changing your files)"
)

# New attempts a task run gets, beyond its retries, when its worker is lost.
WORKER_LOSSES_TOLERATED = 2

logger = logging.getLogger("celerity.worker")

Requeue = Callable[[list[RunEntry]], None]


_app: Celery | None = None
_local = threading.local()


def register(app: Celery) -> None:
    """Register the task-run executor on ``app``."""
    global _app
    _app = app

    @app.task(name=RUN_TASKS, bind=True, acks_late=True, ignore_result=True)
    def run_tasks(self: Any, body: Any) -> int:
        queue = (self.request.delivery_info or {}).get("routing_key")
        try:
            envelope = Envelope.from_json(body)
        except EnvelopeRejected as exc:
            # Dropped (acknowledged): the coordinator resends its runs, or
            # fails them with the reason, once it sees nobody took them.
            logger.warning("Dropped a message on queue %r: %s", queue, exc)
            return 0

        def requeue_later(entries: list[RunEntry]) -> None:
            store = get_store()
            delay = store.lease_seconds if isinstance(store, SharedRunStore) else 30.0
            publish_envelope(app, envelope.with_runs(entries), countdown=delay)

        return run_with_continuations(envelope, queue, requeue_later)


def publish_envelope(app: Celery, envelope: Envelope, countdown: float | None = None) -> None:
    """Send an envelope to its queue."""
    # A fixed argsrepr spares Celery a saferepr of the whole envelope; it and
    # the shadow name are what Flower, `celery inspect` and worker logs show.
    app.send_task(
        RUN_TASKS,
        args=[envelope.to_json()],
        queue=envelope.queue,
        countdown=countdown,
        argsrepr=envelope.summary(),
        kwargsrepr="{}",
        shadow=f"{RUN_TASKS}:{envelope.task_name}",
    )


def on_release(signed_envelopes: list[bytes]) -> None:
    """Runs released by a run that just finished here: keep them for this worker, or send.

    Parked envelopes were signed by the coordinator that parked them; one that
    does not verify (tampered in Redis) is dropped, and the coordinator resends
    its run from what it holds.
    """
    parsed = [e for e in map(_verified_envelope, signed_envelopes) if e is not None]
    kept = getattr(_local, "continuations", None)
    if kept is not None:
        kept.extend(parsed)
    elif _app is not None:
        for envelope in parsed:
            publish_envelope(_app, envelope.with_runs(envelope.runs))


def _verified_envelope(signed: bytes) -> Envelope | None:
    try:
        return Envelope.from_json(kombu_loads(signed, ENVELOPE_CONTENT_TYPE, "binary"))
    except Exception as exc:
        logger.warning("Dropped a released continuation that does not verify: %s", exc)
        return None


def run_with_continuations(
    envelope: Envelope, queue: str | None, requeue_later: Requeue | None
) -> int:
    """Run ``envelope``, then whatever its runs released: one here, the rest sent on.

    Running the first released run in this process is what makes a chain hop
    as cheap as a function call; the others go back to the queue so that other
    workers share them.
    """
    store = get_store()
    if isinstance(store, SharedRunStore):
        store.release_handler = on_release
    released: list[Envelope] = []
    _local.continuations = released
    try:
        finished = execute_envelope(envelope, requeue_later, queue)
        while released:
            batch = released[:]
            released.clear()
            here = [e for e in batch if e.queue in (None, queue)][:1]
            for other in batch:
                if other not in here and _app is not None:
                    publish_envelope(_app, other.with_runs(other.runs))
            for continuation in here:
                finished += execute_envelope(continuation, requeue_later, queue)
        return finished
    finally:
        _local.continuations = None
        _local.finished_states = {}


def execute_envelope(
    envelope: Envelope, requeue_later: Requeue | None = None, queue: str | None = None
) -> int:
    """Run every task run in ``envelope``; returns how many reached a final state."""
    store = get_store()
    runs = list(envelope.runs)
    lapsed: set[uuid.UUID] = set()
    if isinstance(store, SharedRunStore):
        runs, lapsed = _claim(store, envelope, queue, requeue_later)
    # The final states of the previous envelope's runs are what its released
    # continuation reads as upstreams; only the last envelope's are kept.
    upstreams: dict[uuid.UUID, State[Any]] = getattr(_local, "finished_states", None) or {}
    _local.finished_states = {}
    with lease_keeper.holding(store, *(entry.id for entry in runs)):
        return _execute_claimed(envelope, runs, lapsed, requeue_later, upstreams)


def _execute_claimed(
    envelope: Envelope,
    runs: list[RunEntry],
    lapsed: set[uuid.UUID],
    requeue: Requeue | None,
    upstreams: dict[uuid.UUID, State[Any]],
) -> int:
    context = envelope.context
    storage = _result_storage(context.get("result_storage"))
    try:
        task = _load_task(envelope.task_ref)
    except Exception as exc:  # e.g. the worker cannot import the task's module
        reason = _with_hint(f"The worker could not load task {envelope.task_name!r}", exc)
        return sum(_fail_run(entry, reason) for entry in runs)
    return sum(
        _run_entry(task, entry, context, storage, entry.id in lapsed, requeue, upstreams)
        for entry in runs
    )


def _claim(
    store: SharedRunStore, envelope: Envelope, queue: str | None, requeue_later: Requeue | None
) -> tuple[list[RunEntry], set[uuid.UUID]]:
    """Claim the message's runs; (the runs to run here, those whose lease had lapsed).

    One round trip for the batch: the runs (so each first proposal skips its
    read) and their leases; a run another live worker holds is not touched.
    """
    me = worker_identity()
    holders = store.prime([e.id for e in envelope.runs], me, queue, envelope.sent_at)
    busy = [e for e in envelope.runs if holders.get(e.id) not in (None, me)]
    if busy and requeue_later is not None:
        requeue_later(busy)
    mine = [e for e in envelope.runs if e not in busy]
    return mine, {e.id for e in mine if e.id not in holders}


def _run_entry(
    task: Any,
    entry: RunEntry,
    context: dict[str, Any],
    storage: ResultStorage | None,
    lease_lapsed: bool,
    requeue_later: Requeue | None,
    upstreams: dict[uuid.UUID, State[Any]],
) -> bool:
    try:
        task_run = _task_run_of(entry)
    except ObjectNotFound:
        logger.error("Task run %s is not in the run store (expired or deleted); skipped.",
                     entry.id)
        return True
    try:
        parameters = resolve_upstream_refs(unpack(entry.parameters), upstreams)
        prefetch_results(parameters)
    except Exception as exc:
        return _fail_run(entry, f"The worker could not load the task run's parameters: {exc!r}")
    state = _begin(task, task_run, parameters, context, storage)
    if state.is_running() and lease_lapsed and state.state_details.worker != worker_identity():
        if take_over(task_run, state, task.retries):
            state = _begin(task, task_run, parameters, context, storage)
    elif not state.is_final() and requeue_later is not None and not state.is_pending():
        requeue_later([entry])  # someone else holds it right now: look again later
    if state.is_final():
        _remember_final(entry.id, state)
    return state.is_final()


def _remember_final(run_id: uuid.UUID, state: State[Any]) -> None:
    """Keep a final state for the continuation this run may release (see execute_envelope)."""
    finished = getattr(_local, "finished_states", None)
    if finished is not None and getattr(_local, "continuations", None) is not None:
        finished[run_id] = state


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
        return propose_task_run_state(task_run, Failed(message=reason))


def _with_hint(what: str, exc: Exception) -> str:
    """``what: exc``, plus a hint to restart the workers when a name was not found."""
    reason = f"{what}: {exc!r}"
    return reason + STALE_MODULE_HINT if isinstance(exc, AttributeError) else reason


def take_over(task_run: TaskRun, current: State[Any], retries: int) -> bool:
    """Move an orphaned Running run to a new attempt (True) or to Crashed (False).

    A lost worker is the fleet's accident, not the task's failure: as Celery
    redelivers a task whose worker died, the run gets a new attempt beyond its
    own ``retries``, up to ``WORKER_LOSSES_TOLERATED`` times, so that a task
    that kills every worker it runs on still ends (Crashed).
    """
    lost = current.state_details.worker or "unknown"
    attempts = get_store().read_task_run(task_run.id).run_count
    if attempts <= retries + WORKER_LOSSES_TOLERATED:
        logger.warning("Worker %s was lost running %s; starting a new attempt.", lost, task_run.id)
        # No force: if the run moved on meanwhile (it finished after all),
        # the rules reject this and nothing is redone.
        retry = AwaitingRetry(message=f"Worker {lost} was lost; retrying.")
        return propose_task_run_state(task_run, retry).id == retry.id
    logger.error("Worker %s was lost running %s; no retries left.", lost, task_run.id)
    crashed = Crashed(message=f"Worker {lost} was lost while running this task run.")
    propose_task_run_state(task_run, crashed)
    return False


def _fail_run(entry: RunEntry, reason: str) -> bool:
    logger.error(reason)
    try:
        propose_task_run_state(_task_run_of(entry), Failed(message=reason))
    except ObjectNotFound:
        logger.error("Task run %s is not in the run store; nothing to fail.", entry.id)
    return True


def _task_run_of(entry: RunEntry) -> TaskRun:
    """The entry's task run as the store has it (primed for the whole message), stateless."""
    store = get_store()
    known = store.known_task_run(entry.id) if isinstance(store, SharedRunStore) else None
    task_run = known or store.read_task_run(entry.id)
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
