"""CeleryTaskRunner: task runs as messages on Redis queues, run by Celery workers.

The runner is the coordinator's side of a distributed flow run. ``submit`` /
``map`` create task runs in the store and return futures at once; a run is
held here until its upstreams are final (the base runner's gate), then its
parameters -- futures replaced by their final states, which carry result
references -- are packed into a signed envelope and published to the task's
queue. The process's listener completes futures from the flow run's event
stream.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
import uuid
from collections.abc import Hashable
from typing import Any

from kombu.exceptions import ChannelError
from kombu.serialization import dumps as kombu_dumps

from broker_config.celery_config import ENVELOPE_SERIALIZER
from broker_config.queues import route_for
from broker_config.settings import CeleritySettings, get_settings
from engine.context import FlowRunContext, serialize_context
from engine.exceptions import ConfigurationError, SerializationError
from engine.futures import BaseFuture
from engine.results import ResultStorage, shared_result_storage
from engine.schemas import TaskRun
from engine.signing import fleet_signer
from engine.states import Crashed, Failed, State
from engine.store import get_store
from engine.store.base import SharedRunStore
from engine.task_inputs import Upstreams
from engine.task_runners import Gate, TaskRunner, mark_not_ready, propose_final
from engine.utilities.collections import visit_collection
from engine.utilities.importing import to_reference
from workers.envelope import pack
from workers.execution import publish_envelope
from workers.listener import CompletionListener, get_listener
from workers.protocol import Envelope, RunEntry
from workers.publishing import collecting, offer
from workers.reaper import InFlight, Reaper
from workers.upstream import UpstreamRef

logger = logging.getLogger("celerity.runner")

# More upstreams than this and a run waits in the coordinator instead of Redis
# (the release script checks each upstream's state).
MAX_DEFERRED_UPSTREAMS = 16
# A map is split into at least this many messages (when it has that many
# runs) so that every worker gets a share; beyond that, runs share messages.
TARGET_MESSAGES_PER_MAP = 64


class CeleryTaskRunner(TaskRunner):
    """Runs task runs on Celery workers; entered by the flow run that uses it.

    Building one checks nothing, so a module can name it in ``@flow`` before
    the fleet is configured; entering it (the flow run starting) refuses with
    the reason when there is no broker URL or no signing key.
    """

    requires_start = True

    def __init__(self, settings: CeleritySettings | None = None, app: Any = None) -> None:
        super().__init__()
        self.settings = settings or get_settings()
        self._app = app
        self._result_storage: ResultStorage | None = None
        self._listener: CompletionListener | None = None
        self.flow_run_id: uuid.UUID | None = None
        self._context: dict[str, Any] | None = None
        self._task_refs: dict[int, dict[str, Any]] = {}
        # What a resend needs, per dispatched run, until the run is final.
        self._inflight: dict[uuid.UUID, InFlight] = {}
        self._inflight_lock = threading.Lock()
        # Bound once: every in-flight future holds this same callback object.
        self._forget_when_done = self._forget
        self._reaper: Reaper | None = None

    def duplicate(self) -> CeleryTaskRunner:
        return type(self)(self.settings, self._app)

    @property
    def result_storage(self) -> ResultStorage:
        """The fleet's shared result storage (settings decide which)."""
        if self._result_storage is None:
            self._require_fleet()
            self._result_storage = shared_result_storage(self.settings)
        return self._result_storage

    def _require_fleet(self) -> None:
        if not self.settings.broker_url:
            raise ConfigurationError("CeleryTaskRunner needs CELERITY_BROKER_URL (a Redis URL).")
        fleet_signer(self.settings)  # no key, no fleet: refuse before anything is sent

    @property
    def app(self) -> Any:
        if self._app is None:
            from workers.app import get_app

            self._app = get_app(self.settings)
        return self._app

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> CeleryTaskRunner:
        self._require_fleet()
        store = get_store()
        if not isinstance(store, SharedRunStore):
            raise ConfigurationError(
                "The Celery runner needs the Redis run store: set CELERITY_BROKER_URL "
                "(or CELERITY_STORE_URL) so that workers and this process share runs."
            )
        self._listener = get_listener(store.client, store.prefix)
        flow_ctx = FlowRunContext.get()
        if flow_ctx is not None:
            self.flow_run_id = flow_ctx.flow_run.id
            self._listener.watch_flow_run(self.flow_run_id)
        self._reaper = Reaper(store, self)
        self._reaper.start()
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            if self._reaper is not None:
                self._reaper.stop()
            if self._listener is not None and self.flow_run_id is not None:
                self._listener.unwatch_flow_run(self.flow_run_id)

    # --- submission ---------------------------------------------------------------------------

    def new_future(self, task_run: TaskRun) -> BaseFuture[Any]:
        future: BaseFuture[Any] = BaseFuture(task_run.id)
        if self._listener is None:
            raise ConfigurationError("CeleryTaskRunner must be used inside a flow run.")
        self._listener.register(future)
        return future

    def map(
        self, task: Any, calls: list[dict[str, Any]], wait_for: Any = None
    ) -> list[BaseFuture[Any]]:
        per_message = math.ceil(len(calls) / TARGET_MESSAGES_PER_MAP)
        with collecting(min(self.settings.task_batch_size, per_message)):
            return super().map(task, calls, wait_for)

    def dispatch(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        try:
            key, entry = self._entry(task, task_run, parameters)
        except SerializationError as exc:
            future.set_final_state(propose_final(task_run, Failed(message=str(exc))))
            return
        self._track(key, entry, future)
        offer(self._send, key, entry)

    def _entry(
        self, task: Any, task_run: TaskRun, parameters: dict[str, Any]
    ) -> tuple[Any, RunEntry]:
        # Only the id and the parameters: the worker reads the task run itself
        # from the store (in the one round trip it makes per message anyway),
        # and thousands of entries' parameters wait in memory here until their
        # runs finish, in case the reaper must send them again.
        entry = RunEntry(task_run.id, _pack_parameters(task_run, parameters))
        queue = route_for(task.queue, task_run.tags, self.settings)
        return (id(self), id(task), queue, task), entry

    def _track(self, key: Any, entry: RunEntry, future: BaseFuture[Any]) -> None:
        # Kept until the run finishes, so that the reaper can send it again if
        # its message is lost.
        with self._inflight_lock:
            self._inflight[entry.id] = InFlight(key, entry.parameters, future)
        future.add_done_callback(self._forget_when_done)

    # --- continuations ------------------------------------------------------------------------

    def _hold_until_ready(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        wait_for: Any,
        upstreams: Upstreams,
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        if task_run.task_inputs:
            # Stored already, where workers and the dashboard read them: the
            # record kept here while the run waits needs only its id, name and
            # tags, and a fan-in's inputs hold an id string per upstream.
            task_run = task_run.model_copy(update={"task_inputs": {}})
        if self._may_defer(upstreams.futures) and self._defer(
            task, task_run, parameters, upstreams, future
        ):
            return
        super()._hold_until_ready(task, task_run, parameters, wait_for, upstreams, future, context)

    def _may_defer(self, upstreams: list[BaseFuture[Any]]) -> bool:
        if not upstreams or len(upstreams) > MAX_DEFERRED_UPSTREAMS:
            return False
        with self._inflight_lock:  # a lookup, not a copy: this runs for every submission
            return all(u.done() or u.task_run_id in self._inflight for u in upstreams)

    def _defer(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        upstreams: Upstreams,
        future: BaseFuture[Any],
    ) -> bool:
        """Park the run in Redis so that its last upstream's worker releases it."""
        try:
            key, entry = self._entry(task, task_run, parameters)
        except SerializationError as exc:
            future.set_final_state(propose_final(task_run, Failed(message=str(exc))))
            return True
        # Signed like a message: the worker that releases it verifies it first.
        _, _, signed = kombu_dumps(self._envelope(key, [entry]).to_json(), ENVELOPE_SERIALIZER)
        flags = [(u.task_run_id, upstreams.allows_failure(u)) for u in upstreams.futures]
        store = get_store()
        assert isinstance(store, SharedRunStore)  # checked when the runner was entered
        waiting = store.defer(task_run.id, signed, flags)
        if waiting < 0:
            return False  # an upstream already failed: the gate marks it NotReady
        self._track(key, entry, future)
        if waiting == 0:
            offer(self._send, key, entry)
            return True

        def settle() -> None:
            self._settle_deferred(task_run, upstreams, future)

        gate = Gate(len(upstreams.futures), settle)
        one_done = gate.one_done  # one bound method for every upstream, not one each
        for upstream in upstreams.futures:
            upstream.add_done_callback(one_done)
        gate.check()
        return True

    def _settle_deferred(
        self, task_run: TaskRun, upstreams: Upstreams, future: BaseFuture[Any]
    ) -> None:
        # Every upstream is final. If one failed (and is not allowed to), no
        # worker will release this run: take it back and mark it NotReady.
        # Otherwise the worker that finished the last upstream has released
        # it: from now on it counts as sent, so the reaper resends it if that
        # worker died before passing it on.
        failed = upstreams.failed()
        store = get_store()
        if failed and isinstance(store, SharedRunStore) and store.cancel_deferred(task_run.id):
            future.set_final_state(mark_not_ready(task_run, failed[0]))
        elif not failed:
            self._mark_sent([task_run.id], time.time(), count=False)

    def _forget(self, future: BaseFuture[Any]) -> None:
        with self._inflight_lock:
            self._inflight.pop(future.task_run_id, None)

    # --- what the reaper needs (workers.reaper.Dispatcher) ------------------------------------

    def inflight(self) -> dict[uuid.UUID, InFlight]:
        """A copy of the in-flight table (the reaper walks it once per lease period)."""
        with self._inflight_lock:
            return dict(self._inflight)

    def resend(self, task_run_id: uuid.UUID) -> None:
        """Send a dispatched run again from the parameters kept here."""
        with self._inflight_lock:
            # One lookup, not a copy of the table: the reaper calls this per run.
            record = self._inflight.get(task_run_id)
        if record is not None:
            self._send(record.key, [RunEntry(task_run_id, record.parameters)])

    def lose(self, task_run_id: uuid.UUID, reason: str) -> None:
        """Finish the future of a run whose outcome can no longer arrive (store lost)."""
        with self._inflight_lock:
            record = self._inflight.get(task_run_id)
        if record is not None:
            record.future.set_final_state(_crashed(task_run_id, reason))

    def lose_all(self, reason: str) -> None:
        """Finish every unfinished future of this runner Crashed (the flow run is lost)."""
        with self._futures_lock:
            futures = [f for f in self._futures if not f.done()]
        for future in futures:
            future.set_final_state(_crashed(future.task_run_id, reason))

    def queue_is_empty(self, queue: str | None) -> bool:
        """Whether the broker holds no ready message on ``queue``."""
        try:
            with self.app.connection_for_read() as connection:
                channel = connection.default_channel
                declared = channel.queue_declare(queue=queue or "", passive=True)
                return int(declared.message_count) == 0
        except ChannelError:
            return True  # kombu's Redis transport deletes an empty queue's list

    # --- sending ------------------------------------------------------------------------------

    def _envelope(self, key: Any, entries: list[RunEntry]) -> Envelope:
        _, _, queue, task = key
        return Envelope(
            task_name=task.name,
            task_ref=self._task_ref(task),
            context=self._serialized_context(),
            queue=queue,
            runs=tuple(entries),
        )

    def _send(self, key: Hashable, entries: list[RunEntry]) -> None:
        envelope = self._envelope(key, entries)
        try:
            publish_envelope(self.app, envelope)
        except Exception as exc:  # the broker is unreachable: the reaper resends later
            logger.warning(
                "Could not send %d task run(s) of %s (%s); they will be sent again.",
                len(entries),
                envelope.task_name,
                exc,
            )
        self._mark_sent([entry.id for entry in entries], envelope.sent_at)

    def _mark_sent(self, run_ids: list[uuid.UUID], sent_at: float, count: bool = True) -> None:
        with self._inflight_lock:
            for run_id in run_ids:
                record = self._inflight.get(run_id)
                if record is not None:
                    record.sent_at = sent_at
                    record.sends += count

    def _task_ref(self, task: Any) -> dict[str, Any]:
        ref = self._task_refs.get(id(task))
        if ref is None:
            ref = self._task_refs[id(task)] = to_reference(task)
        return ref

    def _serialized_context(self) -> dict[str, Any]:
        if self._context is None:
            context = serialize_context()
            context.pop("task_run", None)
            context.pop("task", None)
            context["result_storage"] = self.result_storage.url
            self._context = context
        return self._context


def _crashed(task_run_id: uuid.UUID, reason: str) -> State[Any]:
    state: State[Any] = Crashed(message=reason)
    state.state_details.task_run_id = task_run_id
    return state


def _pack_parameters(task_run: TaskRun, parameters: dict[str, Any]) -> str:
    """The parameters packed for the envelope; SerializationError names the one that
    cannot be pickled."""
    try:
        return pack(_references_only(parameters))
    except SerializationError:
        pass
    for name, value in parameters.items():
        try:
            pack(_references_only({name: value}))
        except SerializationError as exc:
            raise SerializationError(
                f"Parameter {name!r} of task run {task_run.name!r} cannot be sent to a worker: "
                f"{exc.__cause__ or exc}. Arguments of tasks on the Celery runner must be "
                "picklable (cloudpickle): pass something the task can rebuild the object from."
            ) from None
    raise SerializationError(f"The parameters of task run {task_run.name!r} cannot be pickled.")


def _references_only(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters with futures replaced by ``UpstreamRef`` placeholders and
    states by their references (no values)."""

    def visit(item: Any) -> Any:
        if isinstance(item, BaseFuture):
            # The worker reads the upstream's state from the store: the
            # coordinator never needs to hold (or send) upstream values.
            return UpstreamRef(item.task_run_id)
        if isinstance(item, State) and item.result_ref is not None:
            return item.without_value()
        return item

    return visit_collection(parameters, visit)


__all__ = ["CeleryTaskRunner"]
