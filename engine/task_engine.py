"""The task run state machine: one handler per outcome, driven by a short loop.

``TaskRunEngine`` moves one task run through Pending -> Running -> (Retrying
...) -> Completed / Failed / TimedOut / Crashed by proposing each state to the
run store. ``run_task_sync`` / ``run_task_async`` / the generator variants drive
it in this process; ``begin_task_run`` drives it on a worker from a serialized
context.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from engine.annotations import allow_failure, quote, unmapped
from engine.context import FlowRunContext, TagsContext, TaskRunContext, hydrated_context
from engine.exceptions import Abort, TaskRunTimeoutError
from engine.flow_attempts import reusable_run
from engine.futures import BaseFuture
from engine.leases import lease_keeper, worker_identity
from engine.logging import get_run_logger, patch_print
from engine.orchestration import SetStateStatus
from engine.proposals import propose_task_run
from engine.results import ResultStorage, resolve_storage
from engine.schemas import TaskRun
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
from engine.transactions import CommitMode, RecordStore, Transaction, get_transaction
from engine.utilities.asyncutils import run_coro_sync
from engine.utilities.callables import parameters_to_args_kwargs
from engine.utilities.collections import visit_collection
from engine.utilities.timeout import call_with_timeout

# --- inputs -------------------------------------------------------------------------------


def resolve_inputs(parameters: dict[str, Any]) -> tuple[dict[str, Any], list[State[Any]]]:
    """Parameters with futures and states replaced by values, and the upstreams that failed.

    ``allow_failure`` upstreams contribute their exception; ``quote`` is passed as-is.
    """
    failed: list[State[Any]] = []
    resolved = {name: _resolve(value, False, failed) for name, value in parameters.items()}
    return resolved, failed


def _resolve(expr: Any, allowed: bool, failed: list[State[Any]]) -> Any:
    # Module functions rather than closures that call each other: those would
    # form a reference cycle per task run, left for the garbage collector.
    def visit(item: Any) -> Any:
        if isinstance(item, quote):
            return item.unwrap()
        if isinstance(item, allow_failure):
            return _resolve(item.value, True, failed)
        if isinstance(item, unmapped):
            return _resolve(item.value, allowed, failed)
        if isinstance(item, BaseFuture):
            item.wait()
            return _value_of(item.state, allowed, failed)
        if isinstance(item, State):
            return _value_of(item, allowed, failed)
        return item

    return visit_collection(expr, visit)


def _value_of(state: State[Any], allowed: bool, failed: list[State[Any]]) -> Any:
    if state.is_completed():
        return state.result()
    if allowed:
        return state.result(raise_on_failure=False)
    failed.append(state)
    return None


def upstream_futures(expr: Any) -> list[BaseFuture[Any]]:
    """The futures ``expr`` depends on (quoted values excluded)."""
    found: list[BaseFuture[Any]] = []

    def visit(item: Any) -> Any:
        if isinstance(item, BaseFuture):
            found.append(item)
        return item

    visit_collection(expr, visit)
    return found


# --- creating task runs ---------------------------------------------------------------------


def new_task_run(
    task: Any, parameters: dict[str, Any], flow_run_id: uuid.UUID | None = None
) -> TaskRun:
    """A Pending task run record for ``task`` (not yet stored)."""
    flow_ctx = FlowRunContext.get()
    if flow_run_id is None and flow_ctx is not None:
        flow_run_id = flow_ctx.flow_run.id
    run_id = uuid.uuid4()
    state = Pending()
    state.state_details.task_run_id = run_id
    state.state_details.flow_run_id = flow_run_id
    return TaskRun(
        id=run_id,
        in_transaction=get_transaction() is not None,
        name=task.resolve_run_name(parameters, run_id),
        flow_run_id=flow_run_id,
        task_key=task.task_key,
        dynamic_key=_next_dynamic_key(flow_ctx, task.task_key),
        tags=sorted(set(task.tags) | TagsContext.get().current_tags),
        state=state,
    )


def _next_dynamic_key(flow_ctx: FlowRunContext | None, task_key: str) -> str:
    if flow_ctx is None:
        return uuid.uuid4().hex[:8]
    counters = flow_ctx.__dict__.setdefault("dynamic_keys", {})
    counters[task_key] = counters.get(task_key, -1) + 1
    return str(counters[task_key])


# --- the engine -------------------------------------------------------------------------------


class TaskRunEngine:
    """Runs one task run through its states; one method per outcome."""

    def __init__(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        result_storage: ResultStorage | None = None,
    ) -> None:
        self.task = task
        self.task_run = task_run
        self.parameters = parameters
        self.result_storage = (
            resolve_storage(getattr(task, "result_storage", None))
            or result_storage
            or _context_result_storage()
        )
        self.store = get_store()
        self.state: State[Any] = task_run.state or Pending()
        self.retries_done = 0
        self._retry_delay = 0.0
        self._cache_key: str | None = None
        self._transaction: Transaction | None = None
        self._txn_elsewhere = False  # submitted from a transaction in another process

    @property
    def logger(self) -> Any:
        return get_run_logger(self._context) if self._context else get_run_logger()

    _context: TaskRunContext | None = None

    # --- transitions -------------------------------------------------------------------------

    def set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        """Propose ``state``; on acceptance it becomes the run's state."""
        while True:
            outcome = propose_task_run(self.task_run, state, force)
            if outcome.status != SetStateStatus.WAIT:
                break
            time.sleep(outcome.delay_seconds or 0)
        if outcome.status == SetStateStatus.ABORT:
            raise Abort(outcome.reason or "Run was aborted.")
        if outcome.status == SetStateStatus.ACCEPT:
            self._accept(state)
        elif outcome.state is not None:
            self.state = outcome.state
        return self.state

    def _accept(self, state: State[Any]) -> None:
        if state.is_running():
            self.task_run.run_count += 1
            self.task_run.start_time = self.task_run.start_time or state.timestamp
        if state.is_final():
            self.task_run.end_time = state.timestamp
        self.task_run.state = state
        self.state = state

    def begin_run(self) -> bool:
        """Resolve inputs and move to Running; False if the run must not execute."""
        resolved, failed = resolve_inputs(self.parameters)
        if failed:
            upstream = failed[0].state_details.task_run_id
            self.set_state(
                NotReady(
                    message=f"Upstream task run '{upstream}' did not reach a 'COMPLETED' state."
                )
            )
            return False
        self.parameters = resolved
        running = Running()
        running.state_details.worker = worker_identity()
        self.task_run.worker = running.state_details.worker
        if self.set_state(running) is not running:
            return False  # a duplicate delivery, or the run is already final
        self.run_hooks(self.task.on_running_hooks)
        # Looked up once Running, as the seed's engine does: a cache hit reads
        # Pending, Running, Cached, and only the attempt holding Running may
        # end the run Cached.
        return not self._use_cache()

    def _use_cache(self) -> bool:
        """End the run Cached if its cache key has a stored result; remembers the key."""
        self._cache_key = self._compute_cache_key()
        if self._cache_key is None or self.task.refresh_cache:
            return False
        cached = self.store.read_cache(self._cache_key)
        if cached is None:
            return False
        state = cached.fresh_copy(name="Cached", message=None)
        state.state_details = state.state_details.model_copy()
        self.set_state(state)
        self.run_hooks(self.task.on_completion_hooks)
        return True

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
            self.store.write_cache(self._cache_key, state, state.state_details.cache_expiration)

    def _stage(self, txn: Transaction, state: State[Any]) -> None:
        txn.write_on_commit = self._mark_cache(state)
        if state.is_completed():
            txn.stage(state, self.task.on_rollback_hooks, self.task.on_commit_hooks)

    @contextmanager
    def transaction_context(self) -> Iterator[None]:
        """Inside an active transaction: run in a child transaction keyed by the cache key."""
        if get_transaction() is None:
            self._txn_elsewhere = self.task_run.in_transaction
            with _stand_in_transaction(self._txn_elsewhere):
                yield
            return
        key = self._cache_key
        store = RecordStore() if key else None
        overwrite = bool(self.task.refresh_cache)
        with Transaction(key=key, store=store, overwrite=overwrite, logger=self.logger) as txn:
            txn.task_run_id = self.task_run.id
            self._transaction = txn
            yield
            if not (txn.is_staged() or txn.is_committed()):
                txn.rollback()  # the run did not complete: undo the transaction
        self._transaction = None

    def handle_success(self, value: Any) -> None:
        """The function returned: Completed (or the state it returned)."""
        state = return_value_to_state(value)
        self._persist(state)
        self._record_result(state)
        self.set_state(state)
        self.run_hooks(
            self.task.on_completion_hooks if state.is_completed() else self.task.on_failure_hooks
        )

    def handle_exception(self, exc: BaseException) -> bool:
        """The function raised: retry if allowed (True), else Failed."""
        failed = exception_to_failed_state(
            exc, f"Task run encountered an exception {type(exc).__name__}: {exc}"
        )
        if self.should_retry(failed):
            self.handle_retry(exc)
            return True
        self.logger.error("Task run failed with exception: %r - Retries are exhausted", exc)
        self._persist(failed)
        self.set_state(failed)
        self.run_hooks(self.task.on_failure_hooks)
        return False

    def handle_timeout(self, exc: TaskRunTimeoutError) -> bool:
        """The function ran past ``timeout_seconds``: retry if allowed, else TimedOut."""
        timed_out = TimedOut(
            message=f"Task run exceeded timeout of {self.task.timeout_seconds} second(s)", data=exc
        )
        if self.should_retry(timed_out):
            self.handle_retry(exc)
            return True
        self._persist(timed_out)
        self.set_state(timed_out)
        self.run_hooks(self.task.on_failure_hooks)
        return False

    def handle_retry(self, exc: BaseException) -> None:
        """Schedule the next attempt: AwaitingRetry when there is a delay."""
        delay = self.retry_delay()
        self.retries_done += 1
        self.logger.info(
            "Task run failed with exception: %r - Retry %s/%s will start %s",
            exc,
            self.retries_done,
            self.task.retries,
            f"in {delay:.3g} second(s)" if delay else "immediately",
        )
        self._retry_delay = delay
        if delay > 0:
            waiting = AwaitingRetry(scheduled_time=now() + _seconds(delay))
            waiting.state_details.worker = worker_identity()  # keeps the lease while waiting
            self.set_state(waiting)

    def begin_retry(self) -> None:
        """Enter the next attempt (after any delay has passed)."""
        retrying = Retrying()
        retrying.state_details.worker = worker_identity()
        self.set_state(retrying)

    def handle_crash(self, exc: BaseException) -> None:
        """The process is being interrupted: Crashed, then the caller re-raises."""
        state = exception_to_crashed_state(exc)
        self.logger.error("Crash detected! %s", state.message)
        self.set_state(state, force=True)

    def should_retry(self, state: State[Any]) -> bool:
        """Whether retries remain and the retry condition allows another attempt."""
        if self.retries_done >= self.task.retries:
            return False
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(condition(self.task, self.task_run, state))
        except Exception:
            self.logger.exception("retry_condition_fn raised; not retrying.")
            return False

    def retry_delay(self) -> float:
        """Seconds before the next attempt, with jitter applied."""
        delays = self.task.retry_delay_seconds
        if isinstance(delays, (list, tuple)):
            delay = float(delays[min(self.retries_done, len(delays) - 1)]) if delays else 0.0
        else:
            delay = float(delays or 0)
        factor = self.task.retry_jitter_factor
        if factor and delay:
            factor = min(float(factor), 1.0)
            delay = random.uniform(delay * (1 - factor), delay * (1 + factor))
        return max(delay, 0.0)

    def run_hooks(self, hooks: list[Callable[..., Any]]) -> None:
        """Call each hook with (task, task_run, state); errors are logged, never raised."""
        for hook in hooks:
            name = getattr(hook, "__name__", repr(hook))
            try:
                outcome = hook(self.task, self.task_run, self.state)
                if asyncio.iscoroutine(outcome):
                    run_coro_sync(outcome)
            except Exception:
                self.logger.exception("An error was encountered while running hook %r", name)
            else:
                self.logger.info("Hook %r finished running successfully", name)

    def _result_key(self, state: State[Any]) -> str | None:
        """The task's ``result_storage_key`` template, filled in, for a completed value."""
        template = getattr(self.task, "result_storage_key", None)
        if template is None or not state.is_completed():
            return None
        from engine.runtime import flow_run, task_run

        values = {"parameters": self.parameters, "flow_run": flow_run, "task_run": task_run}
        return str(template).format(**values)

    def _persist(self, state: State[Any]) -> None:
        if self.result_storage is None or state.result_ref is not None:
            return
        try:
            state.result_ref = self.result_storage.write(state.data, key=self._result_key(state))
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

    # --- context ------------------------------------------------------------------------------

    @contextmanager
    def run_context(self) -> Iterator[None]:
        """The task run context, with print capture when ``log_prints`` is on."""
        log_prints = self.task.log_prints
        if log_prints is None:
            flow_ctx = FlowRunContext.get()
            log_prints = bool(flow_ctx and flow_ctx.log_prints)
        self._context = TaskRunContext(
            task=self.task,
            task_run=self.task_run,
            parameters=self.parameters,
            result_storage=self.result_storage,
            log_prints=log_prints,
        )
        with ExitStack() as stack:
            stack.enter_context(self._context)
            stack.enter_context(patch_print(log_prints))
            stack.enter_context(lease_keeper.holding(self.store, self.task_run.id))
            yield

    def call_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The resolved parameters as positional and keyword arguments."""
        return parameters_to_args_kwargs(self.task.fn, self.parameters)

    def result(self, return_type: ReturnType) -> Any:
        """What the caller gets: the final state or its value."""
        if return_type == "state":
            return self.state
        return self.state.result()


@contextmanager
def _stand_in_transaction(wanted: bool) -> Iterator[None]:
    # A run submitted from a transaction in another process (a Celery worker's)
    # gets a transaction of its own, so that ``get_transaction()`` in the task
    # works; its values and hooks stay here (OFF: it never commits anything).
    if not wanted:
        yield
        return
    with Transaction(commit_mode=CommitMode.OFF):
        yield


def _picklable_error(exc: BaseException) -> BaseException:
    from engine.exceptions import FailedRun

    return FailedRun(f"{type(exc).__name__}: {exc}")


def _seconds(value: float) -> Any:
    import datetime

    return datetime.timedelta(seconds=value)


def _context_result_storage() -> ResultStorage | None:
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.result_storage is not None:
        return task_ctx.result_storage
    flow_ctx = FlowRunContext.get()
    return flow_ctx.result_storage if flow_ctx else None


# --- drivers ---------------------------------------------------------------------------------


def _prepare(
    task: Any, parameters: dict[str, Any], task_run: TaskRun | None, wait_for: Any
) -> TaskRun:
    if task_run is None:
        task_run = new_task_run(task, parameters)
        reused = reusable_run(task_run)
        if reused is not None:
            return reused  # completed in an earlier attempt of the flow run
        get_store().create_task_run(task_run)
    if wait_for:
        for future in upstream_futures(wait_for):
            future.wait()
    return task_run


def _reused(task_run: TaskRun, return_type: ReturnType) -> tuple[bool, Any]:
    """(True, what the caller gets) when ``task_run`` completed in an earlier attempt."""
    state = task_run.state
    if state is None or not state.is_completed():
        return False, None
    return True, state if return_type == "state" else state.result()


def _wait_for_failed(wait_for: Any) -> list[State[Any]]:
    if not wait_for:
        return []
    _, failed = resolve_inputs({"wait_for": wait_for})
    return failed


def run_task_sync(
    task: Any,
    parameters: dict[str, Any],
    task_run: TaskRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    result_storage: ResultStorage | None = None,
) -> Any:
    """Run a sync task to a final state in this thread."""
    task_run = _prepare(task, parameters, task_run, wait_for)
    reused, outcome = _reused(task_run, return_type)
    if reused:
        return outcome
    engine = TaskRunEngine(task, task_run, parameters, result_storage)
    with engine.run_context():
        if _wait_for_failed(wait_for):
            engine.set_state(NotReady(message="An upstream in wait_for did not complete."))
        elif engine.begin_run():
            with engine.transaction_context():
                _attempt_loop_sync(engine)
    return engine.result(return_type)


def _attempt_loop_sync(engine: TaskRunEngine) -> None:
    while True:
        try:
            args, kwargs = engine.call_args()
            value = call_with_timeout(
                functools.partial(engine.task.fn, *args, **kwargs),
                engine.task.timeout_seconds,
                lambda: TaskRunTimeoutError(f"Task run exceeded {engine.task.timeout_seconds}s."),
            )
        except TaskRunTimeoutError as exc:
            again = engine.handle_timeout(exc)
        except Exception as exc:
            again = engine.handle_exception(exc)
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(value)
            return
        if not again:
            return
        time.sleep(engine._retry_delay)
        engine.begin_retry()


async def run_task_async(
    task: Any,
    parameters: dict[str, Any],
    task_run: TaskRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    result_storage: ResultStorage | None = None,
) -> Any:
    """Run an async task to a final state on the running event loop."""
    task_run = _prepare(task, parameters, task_run, wait_for)
    reused, outcome = _reused(task_run, return_type)
    if reused:
        return outcome
    engine = TaskRunEngine(task, task_run, parameters, result_storage)
    with engine.run_context():
        if _wait_for_failed(wait_for):
            engine.set_state(NotReady(message="An upstream in wait_for did not complete."))
        elif engine.begin_run():
            with engine.transaction_context():
                await _attempt_loop_async(engine)
    return engine.result(return_type)


async def _attempt_loop_async(engine: TaskRunEngine) -> None:
    while True:
        try:
            args, kwargs = engine.call_args()
            value = await asyncio.wait_for(
                engine.task.fn(*args, **kwargs), engine.task.timeout_seconds
            )
        except (TimeoutError, TaskRunTimeoutError):
            again = engine.handle_timeout(
                TaskRunTimeoutError(f"Task run exceeded {engine.task.timeout_seconds}s.")
            )
        except Exception as exc:
            again = engine.handle_exception(exc)
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(value)
            return
        if not again:
            return
        await asyncio.sleep(engine._retry_delay)
        engine.begin_retry()


def run_generator_task_sync(
    task: Any,
    parameters: dict[str, Any],
    task_run: TaskRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
) -> Iterator[Any]:
    """Run a generator task, yielding each value to the caller as it comes."""
    task_run = _prepare(task, parameters, task_run, wait_for)
    engine = TaskRunEngine(task, task_run, parameters)
    with engine.run_context():
        if not engine.begin_run():
            engine.result(return_type)
            return
        args, kwargs = engine.call_args()
        try:
            yield from engine.task.fn(*args, **kwargs)
        except Exception as exc:
            engine.handle_exception(exc)
            engine.result(return_type)
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(None)


async def run_generator_task_async(
    task: Any,
    parameters: dict[str, Any],
    task_run: TaskRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
) -> AsyncIterator[Any]:
    """Run an async generator task, yielding each value as it comes."""
    task_run = _prepare(task, parameters, task_run, wait_for)
    engine = TaskRunEngine(task, task_run, parameters)
    with engine.run_context():
        if not engine.begin_run():
            engine.result(return_type)
            return
        args, kwargs = engine.call_args()
        try:
            async for item in engine.task.fn(*args, **kwargs):
                yield item
        except Exception as exc:
            engine.handle_exception(exc)
            engine.result(return_type)
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(None)


def run_task(
    task: Any,
    parameters: dict[str, Any],
    task_run: TaskRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
    result_storage: ResultStorage | None = None,
) -> Any:
    """Run ``task`` in this thread whatever its kind; async tasks get their own loop."""
    if task.is_async:
        return asyncio.run(
            run_task_async(task, parameters, task_run, wait_for, return_type, result_storage)
        )
    return run_task_sync(task, parameters, task_run, wait_for, return_type, result_storage)


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
        return run_task(task, parameters, task_run, None, "state", result_storage)


def failed_upstreams(parameters: dict[str, Any], wait_for: Any = None) -> list[State[Any]]:
    """States of finished upstreams that did not complete and are not ``allow_failure``."""
    failed: list[State[Any]] = []
    _collect_failed(parameters, False, failed)
    _collect_failed(wait_for, False, failed)
    return failed


def _collect_failed(expr: Any, allowed: bool, failed: list[State[Any]]) -> None:
    # A module function, not a closure that calls itself: such a closure is a
    # reference cycle, and one per task run waits for the garbage collector.
    def visit(item: Any) -> Any:
        if isinstance(item, quote):
            return item
        if isinstance(item, allow_failure):
            _collect_failed(item.value, True, failed)
            return None  # already checked: don't descend again
        if isinstance(item, BaseFuture):
            # Cheap check first: a big fan-in should not build every state.
            if not allowed and not item.completed():
                failed.append(item.state)
            return None
        if isinstance(item, State):
            if not allowed and not item.is_completed():
                failed.append(item)
            return None  # a state is a leaf: don't descend into it
        return item

    visit_collection(expr, visit)
