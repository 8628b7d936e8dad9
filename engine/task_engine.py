"""The task run state machine: one handler per outcome, driven by a short loop.

A task run moves Pending -> Running -> (AwaitingRetry / Retrying ...) ->
Completed / Failed / TimedOut / Crashed by proposing each state to the run
store. ``SyncTaskRunEngine`` and ``AsyncTaskRunEngine`` (the shared parts in
``BaseTaskRunEngine`` and ``engine.run_engine``) hold one run; ``run_task_sync``
/ ``run_task_async`` / the generator variants drive one in this process, and
``begin_task_run`` drives one on a worker from a serialized context. The input
graph (upstream futures, failed upstreams, resolving arguments) lives in
``engine.task_inputs``.
"""

from __future__ import annotations

import asyncio
import datetime
import random
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from typing import Any

from engine.config import current_settings
from engine.context import FlowRunContext, TagsContext, TaskRunContext, hydrated_context
from engine.exceptions import FailedRun, RunRecordArgumentError, TaskRunTimeoutError
from engine.flow_attempts import reusable_run
from engine.leases import lease_keeper, worker_identity
from engine.logging import patch_print
from engine.orchestration import OrchestrationResult
from engine.proposals import propose_task_run
from engine.results import (
    ResultStorage,
    ResultStore,
    get_default_result_storage,
    resolve_storage,
)
from engine.run_engine import BaseRunEngine, engine_logger, is_crash, legacy_positional
from engine.schemas import TaskRun
from engine.serializers import Serializer, resolve_serializer
from engine.states import (
    AwaitingRetry,
    NotReady,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
    exception_to_crashed_state,
    exception_to_failed_state,
    now,
    return_value_to_state,
)
from engine.store import get_store
from engine.task_engine_types import ReturnType
from engine.task_inputs import Upstreams, failed_upstreams, resolve_inputs, upstream_futures
from engine.transactions import CommitMode, RecordStore, Transaction, get_transaction
from engine.utilities.callables import parameters_to_args_kwargs

# --- creating task runs ---------------------------------------------------------------------


def new_task_run(
    task: Any,
    parameters: dict[str, Any],
    flow_run_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    task_inputs: dict[str, list[str]] | None = None,
) -> TaskRun:
    """A Pending task run record for ``task`` (not yet stored).

    ``task_inputs`` names the upstream task runs per parameter (``Upstreams.inputs``).
    """
    flow_ctx = FlowRunContext.get()
    if flow_run_id is None and flow_ctx is not None:
        flow_run_id = flow_ctx.flow_run.id
    run_id = run_id or uuid.uuid4()
    state = Pending()
    state.state_details.task_run_id = run_id
    state.state_details.flow_run_id = flow_run_id
    run = TaskRun(
        id=run_id,
        in_transaction=get_transaction() is not None,
        name=task.resolve_run_name(parameters, run_id),
        flow_run_id=flow_run_id,
        task_key=task.task_key,
        dynamic_key=_next_dynamic_key(flow_ctx, task.task_key),
        tags=sorted(set(task.tags) | TagsContext.get().current_tags),
        state=state,
    )
    if task_inputs:
        # Assigned, not validated: it is built as dict[str, list[str]], and
        # most runs (no upstreams) then pay nothing for it.
        run.task_inputs = task_inputs
    return run


def _next_dynamic_key(flow_ctx: FlowRunContext | None, task_key: str) -> str:
    if flow_ctx is None:
        return uuid.uuid4().hex[:8]
    counters = flow_ctx.__dict__.setdefault("dynamic_keys", {})
    counters[task_key] = counters.get(task_key, -1) + 1
    return str(counters[task_key])


# --- the engine -------------------------------------------------------------------------------


class BaseTaskRunEngine(BaseRunEngine):
    """Runs one task run through its states; what the sync and async engines share."""

    kind = "task"
    record_attr = "task_run"
    timeout_exception = TaskRunTimeoutError

    def __init__(
        self,
        task: Any,
        parameters: dict[str, Any] | None = None,
        task_run: TaskRun | None = None,
        wait_for: Any = None,
        context: dict[str, Any] | None = None,
        result_storage: ResultStorage | None = None,
    ) -> None:
        self.task = task
        self.parameters: dict[str, Any] = parameters if parameters is not None else {}
        self.task_run: TaskRun | None = task_run
        self.wait_for = wait_for
        self.context = context
        self.state: State[Any] = (task_run.state if task_run else None) or Pending()
        #: Retries used so far in this process.
        self.retries = 0
        self.result_storage: ResultStorage | None = result_storage
        self.store: Any = None
        self._owns_run = False
        self._reused = False
        self._cache_key: str | None = None
        # The record store a configured cache policy names (see _configured_records).
        self._policy_records: ResultStore | None = None
        self._transaction: Transaction | None = None
        self._txn_elsewhere = False  # submitted from a transaction in another process
        self._context: TaskRunContext | None = None
        self._parent_context: TaskRunContext | None = None

    @property
    def owner(self) -> Any:
        return self.task

    @property
    def logger(self) -> Any:
        return engine_logger(self._context)

    def is_running(self) -> bool:
        """Whether this engine holds the run and another attempt is due."""
        return self._owns_run and super().is_running()

    def _propose(self, state: State[Any], force: bool) -> OrchestrationResult:
        return propose_task_run(self.task_run, state, force)  # type: ignore[arg-type]

    # --- setting up ---------------------------------------------------------------------------

    @contextmanager
    def _initialized(self, task_run_id: uuid.UUID | None = None) -> Iterator[Any]:
        """Create (or take) the task run and enter its context."""
        with ExitStack() as stack:
            if self.context:
                stack.enter_context(hydrated_context(self.context))
            self.store = get_store()
            self.result_storage = (
                resolve_storage(getattr(self.task, "result_storage", None))
                or self.result_storage
                or _context_result_storage()
            )
            if self.task_run is None:
                self.task_run = self._create_task_run(task_run_id)
                self.state = self.task_run.state or Pending()
            task_run = self.task_run
            self._parent_context = TaskRunContext.get()  # when called inside another task run
            self._context = self._new_context(task_run)
            self._context.__dict__["_thread"] = threading.get_ident()
            stack.enter_context(self._context)
            stack.enter_context(patch_print(self._context.log_prints))
            stack.enter_context(lease_keeper.holding(self.store, task_run.id))
            yield self
        if self.state.type == StateType.PENDING and self.state.name == "Pending":
            # Never started: its flow run ended before the run was released.
            self.logger.warning(
                "Task run %r did not run: it is still Pending. Please wait for all "
                "submitted tasks to complete before exiting your flow (call .wait() or "
                ".result() on the futures .submit() returns).",
                task_run.name,
            )
        self.store = None

    def _create_task_run(self, task_run_id: uuid.UUID | None) -> TaskRun:
        # Called inline: the arguments still hold the futures and states passed in.
        inputs = Upstreams(self.parameters, self.wait_for).inputs
        task_run = new_task_run(self.task, self.parameters, run_id=task_run_id, task_inputs=inputs)
        reused = reusable_run(task_run)
        if reused is not None:
            self._reused = True  # completed in an earlier attempt of the flow run
            return reused
        self.store.create_task_run(task_run)
        return task_run

    def _new_context(self, task_run: TaskRun) -> TaskRunContext:
        """The task run context, with ``log_prints`` resolved (the flow's when unset)."""
        log_prints = self.task.log_prints
        if log_prints is None:
            flow_ctx = FlowRunContext.get()
            log_prints = bool(flow_ctx and flow_ctx.log_prints)
        return TaskRunContext(
            task=self.task,
            task_run=task_run,
            parameters=self.parameters,
            result_storage=self.result_storage,
            log_prints=log_prints,
        )

    def _should_begin(self) -> bool:
        return not self._reused and not self.state.is_final()

    # --- beginning ------------------------------------------------------------------------------

    def _begin_run(self) -> None:
        """Resolve inputs and move to Running; afterwards ``is_running()`` says whether to run."""
        failed = self._wait_for_upstreams()
        try:
            resolved, failed_inputs = resolve_inputs(self.parameters)
        except RunRecordArgumentError as exc:  # an upstream's value cannot be passed on
            self._finish_failed(exception_to_failed_state(exc, str(exc)))
            return
        failed = failed or failed_inputs
        if failed:
            upstream = failed[0].state_details.task_run_id
            self._set_state(
                NotReady(
                    message=f"Upstream task run '{upstream}' did not reach a 'COMPLETED' state."
                )
            )
            return
        self.parameters = resolved
        if self._context is not None:
            self._context.parameters = resolved
        running = Running()
        running.state_details.worker = worker_identity()
        if self._set_state(running) is not running:
            return  # a duplicate delivery, or the run is already final
        self._owns_run = True
        self._warn_if_timeout_cannot_interrupt()
        self._call_hooks(self.task.on_running_hooks)
        # Looked up once Running, as the seed's engine does: a cache hit reads
        # Pending, Running, Cached, and only the attempt holding Running may
        # end the run Cached.
        self._use_cache()

    def _warn_if_timeout_cannot_interrupt(self) -> None:
        # Outside the main thread a sync task's timeout is enforced from a
        # helper thread: a call blocked in C runs on after the run timed out.
        if (
            self.task.timeout_seconds
            and not self.task.is_async
            and threading.current_thread() is not threading.main_thread()
        ):
            self.logger.warning(
                "Task run %r has a timeout of %s second(s) and is running in a worker "
                "thread: the run ends TimedOut on time, but a call blocked outside Python "
                "(e.g. in C code) keeps running until it returns.",
                self.run.name,
                self.task.timeout_seconds,
            )

    def _wait_for_upstreams(self) -> list[State[Any]]:
        """Wait for the futures in ``wait_for``; those that did not complete."""
        if not self.wait_for:
            return []
        upstreams = Upstreams(None, self.wait_for)
        for future in upstreams.futures:
            future.wait()
        return upstreams.failed()

    # --- caching and transactions -------------------------------------------------------------

    def _use_cache(self) -> None:
        """End the run Cached if its cache key has a stored result; remembers the key."""
        self._cache_key = self._compute_cache_key()
        if self._cache_key is None or self._refreshes_cache():
            return
        self._policy_records = self._configured_records()
        if self._policy_records is not None:
            return  # looked up in the run's transaction, under its lock (see below)
        cached = self.store.read_cache(self._cache_key)
        if cached is not None:
            self._end_cached(cached)

    def _end_cached(self, cached: State[Any]) -> None:
        """End the run Cached with the value of a cache hit."""
        state = cached.fresh_copy(name="Cached", message=None)
        state.state_details = state.state_details.model_copy()
        # A record read from a policy's storage holds the value itself: stored like a
        # result, so that the process waiting for this run can read it.
        self._persist(state)
        self._set_state(state)
        self._call_hooks(self.task.on_completion_hooks)

    def _refreshes_cache(self) -> bool:
        """Whether this run ignores and overwrites cache records: the task's
        ``refresh_cache``, else the ``refresh_cache`` setting at run time
        (``PREFECT_TASKS_REFRESH_CACHE``), as in Prefect."""
        if self.task.refresh_cache is not None:
            return bool(self.task.refresh_cache)
        return bool(current_settings().refresh_cache)

    def _configured_records(self) -> ResultStore | None:
        """The record store of a cache policy given ``key_storage`` or ``lock_manager``
        (``policy.configure(...)``), or None when its records go where cache entries do.

        As in Prefect, a ``key_storage`` holds each key's record metadata and the
        record itself goes under the key in the run's result storage.
        """
        policy = self.task.cache_policy
        if policy is None or not policy.is_configured():
            return None
        update: dict[str, Any] = {}
        if policy.key_storage is not None:
            update["metadata_storage"] = resolve_storage(policy.key_storage)
            update["result_storage"] = self.result_storage or get_default_result_storage()
        if policy.lock_manager is not None:
            update["lock_manager"] = policy.lock_manager
        return RecordStore().model_copy(update=update)

    def _compute_cache_key(self) -> str | None:
        policy = self.task.cache_policy
        if policy is None:
            return None
        flow_ctx = FlowRunContext.get()
        flow_parameters = flow_ctx.parameters if flow_ctx else {}
        try:
            return policy.compute_key(self._context, self.parameters, flow_parameters)
        except Exception:
            self.logger.exception("The cache policy raised; running without the cache.")
            return None

    def _mark_cache(self, state: State[Any]) -> bool:
        """Put the cache key and expiry on ``state``; False if it must not be cached."""
        if self._cache_key is None or not state.is_completed():
            return False
        if self.result_storage is not None and state.result_ref is None:
            return False  # the value could not be stored, so other processes could not read it
        expires = now() + self.task.cache_expiration if self.task.cache_expiration else None
        state.state_details.cache_key = self._cache_key
        state.state_details.cache_expiration = expires
        return True

    def _record_result(self, state: State[Any]) -> None:
        """Cache the result now, or leave it to the transaction the run belongs to."""
        if self._transaction is not None:
            self._stage(self._transaction, state)
        elif self._txn_elsewhere:
            # Submitted from a transaction in another process: that process
            # writes the cache record if and when its transaction commits.
            self._mark_cache(state)
        elif self._mark_cache(state) and self._cache_key is not None:
            self._write_cache([(self._cache_key, state)])
        if self._context is not None:
            # Cache records of task runs called inline inside this one wait for
            # it: written if it completes, dropped if it does not (as a
            # transaction's nested records are).
            nested = self._context.__dict__.pop("_pending_cache_writes", None)
            if nested and state.is_completed():
                self._write_cache(nested)

    def _write_cache(self, entries: list[tuple[str, State[Any]]]) -> None:
        """Write cache records now, or hand them to the task run this one was called in."""
        parent = self._parent_context
        if parent is not None and parent.__dict__.get("_thread") == threading.get_ident():
            parent.__dict__.setdefault("_pending_cache_writes", []).extend(entries)
            return
        for key, state in entries:
            self.store.write_cache(key, state, state.state_details.cache_expiration)

    def _stage(self, txn: Transaction, state: State[Any]) -> None:
        txn.write_on_commit = self._mark_cache(state)
        if state.is_completed():
            txn.stage(state, self.task.on_rollback_hooks, self.task.on_commit_hooks)

    @contextmanager
    def _transaction_context(self) -> Iterator[Transaction | None]:
        """Run in a transaction keyed by the cache key: a child of the active one, or the
        run's own when its task has commit or rollback hooks (they fire as it ends)."""
        if get_transaction() is None and not self._has_own_transaction():
            self._txn_elsewhere = self.run.in_transaction
            with _stand_in_transaction(self._txn_elsewhere) as stand_in:
                yield stand_in
            return
        key = self._cache_key
        configured = self._policy_records
        store = (configured or RecordStore()) if key else None
        isolation = self.task.cache_policy.isolation_level if configured is not None else None
        overwrite = self._refreshes_cache()
        with Transaction(
            key=key, store=store, overwrite=overwrite, isolation_level=isolation, logger=self.logger
        ) as txn:
            txn.task_run_id = self.run.id
            self._transaction = txn
            if configured is not None and txn.is_committed():
                # The key's record, read once this run holds the key (SERIALIZABLE):
                # a run that waited for another's lock finds its result.
                cached = configured.read_state(str(key), holder=txn.lock_holder)
                if cached is not None:
                    self._end_cached(cached)
            yield txn
            if not (txn.is_staged() or txn.is_committed()):
                txn.rollback()  # the run did not complete: undo the transaction
        self._transaction = None

    def _has_own_transaction(self) -> bool:
        # Outside any transaction a run is its own one only when something
        # listens for its end: no transaction is made for the others.
        hooks = self.task.on_commit_hooks or self.task.on_rollback_hooks
        return bool(hooks or self._policy_records) and not self.run.in_transaction

    # --- outcomes ---------------------------------------------------------------------------

    def _handle_success(self, value: Any) -> None:
        """The function returned: Completed (or the state it returned)."""
        if isinstance(value, State) and value.is_failed() and self._retry(value, value):
            return  # a returned Failed state is retried like a raised exception
        state = return_value_to_state(value)
        self._persist(state)
        self._record_result(state)
        self._set_state(state)
        completed = state.is_completed()
        self._call_hooks(self.task.on_completion_hooks if completed else self.task.on_failure_hooks)

    def _handle_exception(self, exc: Exception) -> None:
        """The function raised: retry if allowed, else Failed."""
        failed = exception_to_failed_state(
            exc, f"Task run encountered an exception {type(exc).__name__}: {exc}"
        )
        if self._retry(exc, failed):
            return
        # exc_info: the traceback goes to the console and into the run's logs.
        if self.task.retries:
            self.logger.error(
                "Task run failed with exception: %r - Retries are exhausted", exc, exc_info=exc
            )
        else:
            self.logger.error("Task run failed with exception: %r", exc, exc_info=exc)
        self._finish_failed(failed)

    def _handle_timeout(self, exc: BaseException) -> None:
        """The function ran past ``timeout_seconds``: retry if allowed, else TimedOut."""
        timed_out = TimedOut(
            message=f"Task run exceeded timeout of {self.task.timeout_seconds} second(s)", data=exc
        )
        if self._retry(exc, timed_out):
            return
        self.logger.error("%s", timed_out.message)
        self._finish_failed(timed_out)

    def _finish_failed(self, state: State[Any]) -> None:
        self._persist(state)
        self._set_state(state)
        self._call_hooks(self.task.on_failure_hooks)

    def _retry(self, cause: Any, failed: State[Any]) -> bool:
        """Schedule the next attempt if allowed: AwaitingRetry with a delay, else Retrying."""
        if not self.should_retry(failed):
            return False
        delay = self.retry_delay()
        self.retries += 1
        self.logger.info(
            "Task run failed with %s: %r - Retry %s/%s will start %s",
            "exception" if isinstance(cause, BaseException) else "state",
            cause,
            self.retries,
            self.task.retries,
            f"{delay:.3g} second(s) from now" if delay else "immediately",
            exc_info=cause if isinstance(cause, BaseException) else None,
        )
        if delay > 0:
            waiting = AwaitingRetry(scheduled_time=now() + datetime.timedelta(seconds=delay))
            waiting.state_details.worker = worker_identity()  # keeps the lease while waiting
            self._set_state(waiting)
        else:
            self._begin_retry()
        return True

    def _begin_retry(self) -> None:
        """Enter the next attempt; on_running hooks fire for every attempt."""
        retrying = Retrying()
        retrying.state_details.worker = worker_identity()
        if self._set_state(retrying) is retrying:
            if self._context is not None:
                self._context.start_time = retrying.timestamp  # when this attempt started
            self._call_hooks(self.task.on_running_hooks)

    def _handle_crash(self, exc: BaseException) -> None:
        """The process is being interrupted: Crashed, then the caller re-raises."""
        state = exception_to_crashed_state(exc)
        self.logger.error("Crash detected! %s", state.message)
        self._set_state(state, force=True)

    def should_retry(self, state: State[Any]) -> bool:
        """Whether retries remain and the retry condition allows another attempt."""
        if self.retries >= self.task.retries:
            return False
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        try:
            outcome = condition(self.task, self.run, state)
            if asyncio.iscoroutine(outcome):
                from engine.utilities.asyncutils import run_coro_sync

                outcome = run_coro_sync(outcome)
            return bool(outcome)
        except Exception:
            self.logger.exception("retry_condition_fn raised; not retrying.")
            return False

    def retry_delay(self) -> float:
        """Seconds before the next attempt, with jitter applied."""
        delays = self.task.retry_delay_seconds
        if isinstance(delays, (list, tuple)):
            delay = float(delays[min(self.retries, len(delays) - 1)]) if delays else 0.0
        else:
            delay = float(delays or 0)
        factor = self.task.retry_jitter_factor
        if factor and delay:
            factor = min(float(factor), 1.0)
            delay = random.uniform(delay * (1 - factor), delay * (1 + factor))
        return max(delay, 0.0)

    def _hooks_for(self, state: State[Any]) -> list[Any]:
        if state.is_failed() or state.is_crashed():
            return list(self.task.on_failure_hooks)
        if state.is_completed():
            return list(self.task.on_completion_hooks)
        if state.is_running():
            return list(self.task.on_running_hooks)
        return []

    # --- results ------------------------------------------------------------------------------

    def _result_key(self, state: State[Any]) -> str | None:
        """The task's ``result_storage_key`` template, filled in, for a completed value."""
        template = getattr(self.task, "result_storage_key", None)
        if template is None or not state.is_completed():
            return None
        from engine.runtime import flow_run, task_run

        values = {"parameters": self.parameters, "flow_run": flow_run, "task_run": task_run}
        return str(template).format(**values)

    def _result_serializer(self) -> Serializer | None:
        """The task's ``result_serializer`` resolved; None means the default (cloudpickle)."""
        chosen = self.task.result_serializer
        return None if chosen is None else resolve_serializer(chosen)

    def _persist(self, state: State[Any]) -> None:
        if self.result_storage is None or state.result_ref is not None:
            return
        try:
            state.result_ref = self.result_storage.write(
                state.data, key=self._result_key(state), serializer=self._result_serializer()
            )
        except Exception as exc:  # the value cannot leave this process: fail clearly instead
            if state.is_failed() and isinstance(state.data, BaseException):
                # An exception that cannot be pickled: keep what it said.
                state.message = f"{state.message} (the exception could not be pickled: {exc})"
                substitute = _picklable_error(state.data)
            else:
                state.type, state.name = StateType.FAILED, "Failed"
                state.message = f"Task run result could not be stored: {exc}"
                state.data, substitute = exc, _picklable_error(exc)
            state.result_ref = self.result_storage.write(substitute)

    def call_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The resolved parameters as positional and keyword arguments."""
        return parameters_to_args_kwargs(self.task.fn, self.parameters)


class SyncTaskRunEngine(BaseTaskRunEngine):
    """The task run engine for sync functions (and sync generators).

    Example::

        engine = SyncTaskRunEngine(task=add, parameters={"x": 1, "y": 2})
        with engine.start():
            while engine.is_running():
                engine.wait_until_ready()
                engine.call_task_fn()
        engine.result()  # 3
    """

    def set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        """Propose ``state``; the state in effect afterwards."""
        return self._set_state(state, force)

    def begin_run(self) -> None:
        """Resolve inputs and propose Running (or NotReady, or end Cached)."""
        self._begin_run()

    def handle_success(self, result: Any, transaction: Any = None) -> None:
        """The function returned ``result``."""
        self._handle_success(result)

    def handle_exception(self, exc: Exception) -> None:
        """The function raised ``exc``: retry or Failed."""
        self._handle_exception(exc)

    def handle_timeout(self, exc: BaseException) -> None:
        """The function ran too long: retry or TimedOut."""
        self._handle_timeout(exc)

    def handle_retry(self, exc_or_state: Any) -> bool:
        """Schedule another attempt if allowed; whether one was scheduled."""
        failed = exc_or_state if isinstance(exc_or_state, State) else exception_to_failed_state(
            exc_or_state
        )
        return self._retry(exc_or_state, failed)

    def handle_crash(self, exc: BaseException) -> None:
        """The run was interrupted: Crashed."""
        self._handle_crash(exc)

    def call_hooks(self, state: State[Any] | None = None) -> None:
        """Call the hooks that match ``state`` (default: the current state)."""
        self._call_hooks(self._hooks_for(state or self.state))

    def wait_until_ready(self) -> None:
        """Sleep until a scheduled retry is due, then enter it."""
        self.wait_until_ready_sync()

    def call_task_fn(self, transaction: Any = None) -> None:
        """Call the function once and hand its outcome to the matching handler."""
        self.attempt_sync()

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's value; raises its exception if it did not complete."""
        return self.result_sync(raise_on_failure)

    #: Create (or take) the task run and enter its context (a context manager).
    initialize_run = BaseTaskRunEngine._initialized

    @contextmanager
    def start(
        self, task_run_id: uuid.UUID | None = None, dependencies: Any = None
    ) -> Iterator[None]:
        """Initialize the run and begin it; an interrupt inside ends it Crashed."""
        with self.initialize_run(task_run_id):
            try:
                if self._should_begin():
                    self.begin_run()
                yield
            except BaseException as exc:
                if is_crash(exc):
                    self.handle_crash(exc)
                raise

    #: The transaction the run's result is staged in, if any (a context manager).
    transaction_context = BaseTaskRunEngine._transaction_context


class AsyncTaskRunEngine(BaseTaskRunEngine):
    """The task run engine for coroutine functions (and async generators)."""

    async def set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        """Propose ``state``; the state in effect afterwards."""
        return self._set_state(state, force)

    async def begin_run(self) -> None:
        """Resolve inputs and propose Running (or NotReady, or end Cached)."""
        self._begin_run()

    async def handle_success(self, result: Any, transaction: Any = None) -> None:
        """The function returned ``result``."""
        self._handle_success(result)

    async def handle_exception(self, exc: Exception) -> None:
        """The function raised ``exc``: retry or Failed."""
        self._handle_exception(exc)

    async def handle_timeout(self, exc: BaseException) -> None:
        """The function ran too long: retry or TimedOut."""
        self._handle_timeout(exc)

    async def handle_retry(self, exc_or_state: Any) -> bool:
        """Schedule another attempt if allowed; whether one was scheduled."""
        failed = exc_or_state if isinstance(exc_or_state, State) else exception_to_failed_state(
            exc_or_state
        )
        return self._retry(exc_or_state, failed)

    async def handle_crash(self, exc: BaseException) -> None:
        """The run was interrupted: Crashed."""
        self._handle_crash(exc)

    async def call_hooks(self, state: State[Any] | None = None) -> None:
        """Call the hooks that match ``state`` (default: the current state)."""
        self._call_hooks(self._hooks_for(state or self.state))

    async def wait_until_ready(self) -> None:
        """Sleep (without blocking the loop) until a scheduled retry is due, then enter it."""
        await self.wait_until_ready_async()

    async def call_task_fn(self, transaction: Any = None) -> None:
        """Await the function once and hand its outcome to the matching handler."""
        await self.attempt_async()

    async def result(self, raise_on_failure: bool = True) -> Any:
        """The run's value; raises its exception if it did not complete."""
        return self.result_sync(raise_on_failure)

    @asynccontextmanager
    async def initialize_run(
        self, task_run_id: uuid.UUID | None = None
    ) -> AsyncIterator[AsyncTaskRunEngine]:
        """Create (or take) the task run and enter its context."""
        with self._initialized(task_run_id):
            yield self

    @asynccontextmanager
    async def start(
        self, task_run_id: uuid.UUID | None = None, dependencies: Any = None
    ) -> AsyncIterator[None]:
        """Initialize the run and begin it; an interrupt inside ends it Crashed."""
        async with self.initialize_run(task_run_id):
            try:
                if self._should_begin():
                    await self.begin_run()
                yield
            except BaseException as exc:
                if is_crash(exc):
                    await self.handle_crash(exc)
                raise

    @asynccontextmanager
    async def transaction_context(self) -> AsyncIterator[Transaction | None]:
        """The transaction the run's result is staged in, if any."""
        with self._transaction_context() as txn:
            yield txn


#: The engine's name before it had a sync and an async variant.
TaskRunEngine = SyncTaskRunEngine


@contextmanager
def _stand_in_transaction(wanted: bool) -> Iterator[Transaction | None]:
    # A run submitted from a transaction in another process (a Celery worker's)
    # gets a transaction of its own, so that ``get_transaction()`` in the task
    # works; its values and hooks stay here (OFF: it never commits anything).
    if not wanted:
        yield None
        return
    with Transaction(commit_mode=CommitMode.OFF) as txn:
        yield txn


def _picklable_error(exc: BaseException) -> BaseException:
    return FailedRun(f"{type(exc).__name__}: {exc}")


def _context_result_storage() -> ResultStorage | None:
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.result_storage is not None:
        return task_ctx.result_storage
    flow_ctx = FlowRunContext.get()
    return flow_ctx.result_storage if flow_ctx else None


# --- drivers ---------------------------------------------------------------------------------


def run_task_sync(
    task: Any,
    task_run_id: uuid.UUID | dict[str, Any] | None = None,
    task_run: TaskRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    dependencies: Any = None,
    context: dict[str, Any] | None = None,
    *,
    result_storage: ResultStorage | None = None,
) -> Any:
    """Run a sync task to a final state in this thread; its value, or its state.

    ``parameters`` default to none (the function's defaults apply); ``context``
    is a serialized context (``serialize_context()``) to run in.
    """
    run_id, parameters, wait_for, return_type = legacy_positional(
        task_run_id, parameters, wait_for, return_type
    )
    engine = SyncTaskRunEngine(task, parameters, task_run, wait_for, context, result_storage)
    with engine.start(task_run_id=run_id):
        if engine.is_running():
            with engine.transaction_context():
                while engine.is_running():
                    engine.wait_until_ready()
                    engine.call_task_fn()
    return engine.state if return_type == "state" else engine.result()


async def run_task_async(
    task: Any,
    task_run_id: uuid.UUID | dict[str, Any] | None = None,
    task_run: TaskRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    dependencies: Any = None,
    context: dict[str, Any] | None = None,
    *,
    result_storage: ResultStorage | None = None,
) -> Any:
    """Run an async task to a final state on the running event loop; its value, or its state."""
    run_id, parameters, wait_for, return_type = legacy_positional(
        task_run_id, parameters, wait_for, return_type
    )
    engine = AsyncTaskRunEngine(task, parameters, task_run, wait_for, context, result_storage)
    async with engine.start(task_run_id=run_id):
        if engine.is_running():
            async with engine.transaction_context():
                while engine.is_running():
                    await engine.wait_until_ready()
                    await engine.call_task_fn()
    return engine.state if return_type == "state" else await engine.result()


def _generator_return_type(return_type: Any) -> None:
    if return_type != "result":
        raise ValueError("The return_type for a generator task must be 'result'")


def run_generator_task_sync(
    task: Any,
    task_run_id: uuid.UUID | None = None,
    task_run: TaskRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    dependencies: Any = None,
    context: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """Run a generator task, yielding each value as it comes; returns what it returns.

    A failed attempt that may retry runs the generator again from the start.
    """
    run_id, parameters, wait_for, return_type = legacy_positional(
        task_run_id, parameters, wait_for, return_type
    )
    _generator_return_type(return_type)
    engine = SyncTaskRunEngine(task, parameters, task_run, wait_for, context)
    with engine.start(task_run_id=run_id):
        if not engine.is_running():
            return engine.result()
        with engine.transaction_context():
            return (yield from engine.drive_generator_sync())


async def run_generator_task_async(
    task: Any,
    task_run_id: uuid.UUID | None = None,
    task_run: TaskRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    dependencies: Any = None,
    context: dict[str, Any] | None = None,
) -> AsyncIterator[Any]:
    """Run an async generator task, yielding each value as it comes."""
    run_id, parameters, wait_for, return_type = legacy_positional(
        task_run_id, parameters, wait_for, return_type
    )
    _generator_return_type(return_type)
    engine = AsyncTaskRunEngine(task, parameters, task_run, wait_for, context)
    async with engine.start(task_run_id=run_id):
        if not engine.is_running():
            engine.result_sync()
            return
        async with engine.transaction_context():
            async for item in engine.drive_generator_async():
                yield item


def run_task(
    task: Any,
    task_run_id: uuid.UUID | dict[str, Any] | None = None,
    task_run: TaskRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    dependencies: Any = None,
    context: dict[str, Any] | None = None,
    *,
    result_storage: ResultStorage | None = None,
) -> Any:
    """Run ``task`` in this thread whatever its kind; async tasks get their own loop."""
    run_id, parameters, wait_for, return_type = legacy_positional(
        task_run_id, parameters, wait_for, return_type
    )
    kwargs: dict[str, Any] = dict(
        task_run_id=run_id,
        task_run=task_run,
        parameters=parameters,
        wait_for=wait_for,
        return_type=return_type,
        context=context,
        result_storage=result_storage,
    )
    if task.is_async:
        return asyncio.run(run_task_async(task, **kwargs))
    return run_task_sync(task, **kwargs)


def begin_task_run(
    task: Any,
    task_run: TaskRun,
    parameters: dict[str, Any],
    context: dict[str, Any],
    result_storage: ResultStorage | None = None,
) -> State[Any]:
    """Run a task run that another process created: hydrate its context, run, return its state.

    This is what a worker calls. A run that is already running or final is not
    run again (the store rejects the second Running), and its current state is
    returned.
    """
    with hydrated_context(context):
        return run_task(
            task,
            task_run=task_run,
            parameters=parameters,
            return_type="state",
            result_storage=result_storage,
        )


__all__ = [
    "AsyncTaskRunEngine",
    "BaseTaskRunEngine",
    "SyncTaskRunEngine",
    "TaskRunEngine",
    "begin_task_run",
    "failed_upstreams",
    "new_task_run",
    "resolve_inputs",
    "run_generator_task_async",
    "run_generator_task_sync",
    "run_task",
    "run_task_async",
    "run_task_sync",
    "upstream_futures",
    "worker_identity",
]
