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
import math
import threading
import uuid
from collections.abc import Hashable
from typing import Any

from broker_config.queues import route_for
from broker_config.settings import CeleritySettings, get_settings
from engine.context import FlowRunContext, serialize_context
from engine.exceptions import ConfigurationError
from engine.futures import BaseFuture
from engine.results import (
    FileSystemResultStorage,
    RedisResultStorage,
    ResultStorage,
    register_storage,
)
from engine.schemas import TaskRun
from engine.states import State
from engine.store import get_store
from engine.task_runners import TaskRunner
from engine.utilities.collections import visit_collection
from engine.utilities.importing import to_reference
from workers.envelope import pack
from workers.execution import ENVELOPE_VERSION, RUN_TASKS
from workers.listener import CompletionListener, get_listener
from workers.publishing import collecting, offer
from workers.reaper import Reaper

# A map is split into at least this many messages (when it has that many
# runs) so that every worker gets a share; beyond that, runs share messages.
TARGET_MESSAGES_PER_MAP = 64


def result_storage_for(settings: CeleritySettings) -> ResultStorage:
    """The shared result storage the settings ask for (Redis by default)."""
    if settings.result_storage == "file":
        return register_storage(FileSystemResultStorage(settings.result_path))
    url = settings.effective_store_url or settings.broker_url
    storage = RedisResultStorage(
        str(url), prefix=settings.key_prefix, ttl_seconds=settings.result_ttl_seconds
    )
    storage.url = f"{url}#{settings.key_prefix}"
    return register_storage(storage)


class CeleryTaskRunner(TaskRunner):
    """Runs task runs on Celery workers; entered by the flow run that uses it."""

    def __init__(self, settings: CeleritySettings | None = None, app: Any = None) -> None:
        super().__init__()
        self.settings = settings or get_settings()
        if not self.settings.broker_url:
            raise ConfigurationError("CeleryTaskRunner needs CELERITY_BROKER_URL (a Redis URL).")
        self._app = app
        self.result_storage = result_storage_for(self.settings)
        self._listener: CompletionListener | None = None
        self._flow_run_id: uuid.UUID | None = None
        self._context: dict[str, Any] | None = None
        self._task_refs: dict[int, dict[str, Any]] = {}
        self._inflight: dict[uuid.UUID, tuple[Any, dict[str, Any]]] = {}
        self._inflight_lock = threading.Lock()
        self._reaper: Reaper | None = None

    def duplicate(self) -> CeleryTaskRunner:
        return type(self)(self.settings, self._app)

    @property
    def app(self) -> Any:
        if self._app is None:
            from workers.app import get_app

            self._app = get_app(self.settings)
        return self._app

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> CeleryTaskRunner:
        store = get_store()
        if not hasattr(store, "client"):
            raise ConfigurationError(
                "The Celery runner needs the Redis run store: set CELERITY_BROKER_URL "
                "(or CELERITY_STORE_URL) so that workers and this process share runs."
            )
        self._listener = get_listener(store.client, store.prefix)
        flow_ctx = FlowRunContext.get()
        if flow_ctx is not None:
            self._flow_run_id = flow_ctx.flow_run.id
            self._listener.watch_flow_run(self._flow_run_id)
        self._reaper = Reaper(store, self._inflight_snapshot, self._resend, self._retries_of)  # type: ignore[arg-type]
        self._reaper.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            if self._reaper is not None:
                self._reaper.stop()
            if self._listener is not None and self._flow_run_id is not None:
                self._listener.unwatch_flow_run(self._flow_run_id)

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
        entry = {
            "task_run": task_run.model_dump(mode="json", exclude={"state"}),
            "parameters": pack(_references_only(parameters)),
        }
        queue = route_for(task.queue, task_run.tags, self.settings)
        key = (id(self), id(task), queue, task)
        # Kept until the run finishes, so that the reaper can send it again if
        # its worker is lost.
        with self._inflight_lock:
            self._inflight[task_run.id] = (key, entry)
        future.add_done_callback(self._forget)
        offer(self._send, key, entry)

    def _forget(self, future: BaseFuture[Any]) -> None:
        with self._inflight_lock:
            self._inflight.pop(future.task_run_id, None)

    def _inflight_snapshot(self) -> dict[uuid.UUID, Any]:
        with self._inflight_lock:
            return dict(self._inflight)

    def _resend(self, task_run_id: uuid.UUID) -> None:
        found = self._inflight_snapshot().get(task_run_id)
        if found is not None:
            key, entry = found
            self._send(key, [entry])

    def _retries_of(self, task_run_id: uuid.UUID) -> int:
        found = self._inflight_snapshot().get(task_run_id)
        return found[0][3].retries if found is not None else 0

    def _send(self, key: Hashable, entries: list[dict[str, Any]]) -> None:
        _, _, queue, task = key  # type: ignore[misc]
        envelope = {
            "v": ENVELOPE_VERSION,
            "task": {"name": task.name, "ref": self._task_ref(task)},
            "context": self._serialized_context(),
            "runs": entries,
        }
        # A fixed argsrepr spares Celery a saferepr of the whole envelope.
        summary = f"<{len(entries)} run(s) of {task.name}>"
        self.app.send_task(
            RUN_TASKS, args=[envelope], queue=queue, argsrepr=summary, kwargsrepr="{}"
        )

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


def _references_only(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters with futures replaced by their final states (references, no values)."""

    def visit(item: Any) -> Any:
        if isinstance(item, BaseFuture):
            return item.state.without_value() if item.state.result_ref else item.state
        if isinstance(item, State) and item.result_ref is not None:
            return item.without_value()
        return item

    return visit_collection(parameters, visit)


__all__ = ["CeleryTaskRunner", "result_storage_for"]
