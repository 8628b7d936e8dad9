"""The flow run state machine, and the drivers that run a flow in this process or another.

``FlowRunEngine`` (sync functions and generators) and ``AsyncFlowRunEngine``
(coroutines and async generators) create the flow run (a child run linked to a
parent task run when called inside another flow), validate parameters, move
through Running -> (AwaitingRetry / Retrying ...) -> Completed / Failed /
TimedOut / Cancelled / Crashed, and call the flow's hooks. The shared
set-state loop, attempt loop and generator drivers are in ``engine.run_engine``.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import (
    AbstractContextManager,
    ExitStack,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from typing import Any

from pydantic_core import to_jsonable_python

from engine.context import FlowRunContext, TagsContext, TaskRunContext, hydrated_context
from engine.exceptions import (
    FlowRunLost,
    FlowRunTimeoutError,
    ObjectNotFound,
    ParameterTypeError,
)
from engine.flow_attempts import (
    crash_unfinished_task_runs,
    parameters_for_attempt,
    retry_fields,
    reusable_run,
    start_attempt,
)
from engine.futures import resolve_futures_to_states
from engine.leases import lease_keeper
from engine.logging import patch_print
from engine.orchestration import OrchestrationResult
from engine.results import ResultStorage, resolve_storage
from engine.run_engine import BaseRunEngine, engine_logger, is_crash, legacy_positional
from engine.schemas import FlowRun, TaskRun
from engine.states import (
    AwaitingRetry,
    Cancelled,
    Cancelling,
    Failed,
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
from engine.store.base import SharedRunStore
from engine.task_engine_types import ReturnType
from engine.task_inputs import Upstreams, resolve_inputs
from engine.utilities.callables import (
    is_async_generator_fn,
    is_generator_fn,
    parameters_to_args_kwargs,
)
from engine.utilities.signals import sigterm_raises


def jsonable_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON-friendly values for the store (anything else by repr)."""
    return to_jsonable_python(parameters, fallback=repr)


class BaseFlowRunEngine(BaseRunEngine):
    """Runs one flow run through its states; what the sync and async engines share."""

    kind = "flow"
    record_attr = "flow_run"
    timeout_exception = FlowRunTimeoutError
    awaits_returned_coroutines = True

    def __init__(
        self,
        flow: Any,
        parameters: dict[str, Any] | None = None,
        flow_run: FlowRun | None = None,
        wait_for: Iterable[Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.flow = flow
        if parameters is None:
            parameters = parameters_for_attempt(flow_run) if isinstance(flow_run, FlowRun) else {}
        self.parameters: dict[str, Any] = parameters
        self.flow_run: FlowRun | None = flow_run
        self.wait_for = wait_for
        self.context = context
        self.store: Any = None
        self.parent_task_run: TaskRun | None = None
        self.validation_error: ParameterTypeError | None = None
        self.state: State[Any] = (getattr(flow_run, "state", None) if flow_run else None) or (
            Pending()
        )
        #: Retries used so far (counting attempts of earlier processes).
        self.retries = 0
        self.task_runner: Any = None
        self.result_storage: ResultStorage | None = None
        self._context: FlowRunContext | None = None
        self._owns_run = False
        self._reused: FlowRun | None = None
        self._failed_upstreams: list[State[Any]] = []
        self._parent_inputs: dict[str, list[str]] = {}

    @property
    def owner(self) -> Any:
        return self.flow

    @property
    def logger(self) -> Any:
        return engine_logger(self._context)

    def is_running(self) -> bool:
        """Whether this engine holds the run and another attempt is due."""
        return self._owns_run and super().is_running()

    # --- creating the run ---------------------------------------------------------------------

    def _validate(self) -> None:
        if not self.flow.should_validate_parameters:
            return
        try:
            self.parameters = self.flow.validate_parameters(self.parameters)
        except ParameterTypeError as exc:
            self.validation_error = exc

    def _create_flow_run(self) -> FlowRun:
        parent = FlowRunContext.get()
        if parent is not None:
            self.parent_task_run = self._create_parent_task_run(parent)
            if self._reused is not None:
                return self._reused
        run_id = uuid.uuid4()
        state = Pending()
        state.state_details.flow_run_id = run_id
        flow_run = FlowRun(
            id=run_id,
            name=self.flow.resolve_run_name(self.parameters, run_id),
            flow_name=self.flow.name,
            flow_version=self.flow.version,
            parameters=jsonable_parameters(self.parameters),
            tags=sorted(TagsContext.get().current_tags | set(self.flow.tags)),
            parent_task_run_id=self.parent_task_run.id if self.parent_task_run else None,
            parent_flow_run_id=parent.flow_run.id if parent else None,
            state=state,
            **retry_fields(self.flow, self.parameters, self.store),
        )
        return self.store.create_flow_run(flow_run)

    def _create_parent_task_run(self, parent: FlowRunContext) -> TaskRun:
        from engine.task_engine import _next_dynamic_key

        run_id = uuid.uuid4()
        state = Pending()
        state.state_details.task_run_id = run_id
        state.state_details.flow_run_id = parent.flow_run.id
        task_key = f"subflow:{self.flow.name}"
        task_run = TaskRun(
            id=run_id,
            name=f"{self.flow.name}-{run_id.hex[:3]}",
            flow_run_id=parent.flow_run.id,
            task_key=task_key,
            dynamic_key=_next_dynamic_key(parent, task_key),
            tags=sorted(TagsContext.get().current_tags),
            state=state,
            task_inputs=self._parent_inputs,
        )
        reused = reusable_run(task_run)
        if reused is not None and reused.state is not None:
            self._reuse_child(reused)
            return reused
        return self.store.create_task_run(task_run)

    def _reuse_child(self, parent_task_run: TaskRun) -> None:
        """Take the outcome of a child flow run that completed in an earlier attempt."""
        mirrored = parent_task_run.state
        assert mirrored is not None
        child_id = mirrored.state_details.child_flow_run_id
        child = self.store.read_flow_run(child_id) if child_id else None
        if child is None or child.state is None or not child.state.is_completed():
            # The child's own record is gone: its parent task run's copy will do.
            child = FlowRun(name=self.flow.name, flow_name=self.flow.name, state=mirrored)
        self._reused = child
        self.state = child.state  # type: ignore[assignment]

    # --- transitions -------------------------------------------------------------------------

    def _propose(self, state: State[Any], force: bool) -> OrchestrationResult:
        state.state_details.flow_run_id = self.run.id
        try:
            return self.store.propose_state(self.run.id, state, force=force)
        except ObjectNotFound:
            raise FlowRunLost(
                f"Flow run {self.run.id} ({self.run.name!r}) is no longer in the "
                f"run store ({self.store!r}): was Redis restarted without persistence, or "
                "its keys deleted? Its outcome cannot be recorded; this process stops it."
            ) from None

    def _accept(self, state: State[Any], run: Any) -> None:
        super()._accept(state, run)
        self._mirror_on_parent(state)

    def _mirror_on_parent(self, state: State[Any]) -> None:
        if self.parent_task_run is None or state.name == "Retrying":
            return
        mirrored = state.fresh_copy(result_ref=state.result_ref)
        mirrored.state_details = state.state_details.model_copy(
            update={
                "task_run_id": self.parent_task_run.id,
                "flow_run_id": self.parent_task_run.flow_run_id,
                "child_flow_run_id": self.run.id,
            }
        )
        self.store.propose_state(self.parent_task_run.id, mirrored)

    # --- setting up ---------------------------------------------------------------------------

    def _sigterm_scope(self) -> AbstractContextManager[None]:
        """SIGTERM raises ``TerminationSignal`` while this run runs, so it ends Crashed
        with its hooks (``engine.utilities.signals``); not for a flow called inside a
        task run, whose process (a Celery worker's) owns its signals."""
        if TaskRunContext.get() is not None:
            return nullcontext()
        return sigterm_raises()

    @contextmanager
    def _initialized(self) -> Iterator[None]:
        hydrate = hydrated_context(self.context) if self.context else nullcontext()
        with hydrate:
            self.store = get_store()
            self._parent_inputs = self._subflow_inputs()
            self._wait_for_upstreams()
            # A future passed to a subflow becomes its value before validation.
            self.parameters, _ = resolve_inputs(self.parameters)
            self._validate()
            if self.flow_run is None:
                self.flow_run = self._create_flow_run()
                self.state = self.flow_run.state or Pending()
            if self._reused is not None:
                yield  # a child flow that completed in an earlier attempt of its parent
                return
            with self._run_context():
                yield

    @contextmanager
    def _run_context(self) -> Iterator[None]:
        """The flow run context, with its task runner started and print capture if asked.

        When the context cannot be entered (most often a task runner that cannot
        start: no broker URL, no signing key) the flow run ends Failed with the
        reason before the error propagates, so no run is left Pending.
        """
        try:
            stack = self._enter_run_context()
        except Exception as exc:
            self._set_state(Failed(message=f"Flow run could not start: {exc}"))
            raise
        with stack:
            yield

    def _enter_run_context(self) -> ExitStack:
        runner = self.flow.task_runner.duplicate()
        self.task_runner = runner
        self.result_storage = getattr(runner, "result_storage", None) or resolve_storage(
            self.flow.result_storage
        )
        log_prints = self.flow.log_prints
        if log_prints is None:  # unset: a subflow follows its parent flow run, as in Prefect
            parent = FlowRunContext.get()
            log_prints = bool(parent and parent.log_prints)
        self._context = FlowRunContext(
            flow=self.flow,
            flow_run=self.run,
            parameters=self.parameters,
            task_runner=runner,
            result_storage=self.result_storage,
            log_prints=log_prints,
        )
        with ExitStack() as stack:
            stack.enter_context(self._context)
            # Renewed while this process runs the flow: a sweeper ends the run
            # Crashed once the lease lapses (the process died).
            stack.enter_context(lease_keeper.holding(self.store, self.run.id))
            stack.enter_context(patch_print(log_prints))
            stack.enter_context(_outside_task_context())
            stack.enter_context(runner)
            return stack.pop_all()  # entered in full: the caller's ``with`` exits it

    def _should_begin(self) -> bool:
        return self._reused is None and not self.state.is_final()

    # --- beginning ----------------------------------------------------------------------------

    def _begin_run(self) -> None:
        """Validate parameters and move to Running; afterwards ``is_running()`` says whether."""
        if self._failed_upstreams:
            upstream = self._failed_upstreams[0].state_details.task_run_id
            self._set_state(
                NotReady(
                    message=f"Upstream task run '{upstream}' did not reach a 'COMPLETED' state."
                )
            )
            return
        if self.validation_error is not None:
            # Prefect's wording, so code that reads the state message ports unchanged
            message = f"Validation of flow parameters failed with error: {self.validation_error}"
            self.logger.error("%s", message)
            self._set_state(Failed(message=message, data=self.validation_error))
            self._call_hooks(self.flow.on_failure_hooks)
            return
        if self._set_state(Running()).type != StateType.RUNNING:
            return
        self._owns_run = True
        # A run resumed in a new process has used attempts already.
        self.retries = max(self.run.run_count - 1, 0)
        start_attempt(self._context)
        if self.run.run_count == 1:
            self.logger.info("Beginning flow run %r for flow %r", self.run.name, self.flow.name)
        self._call_hooks(self.flow.on_running_hooks)

    def _subflow_inputs(self) -> dict[str, list[str]]:
        """The upstream task runs a subflow call names, for its parent task run's record.

        Read before the arguments' futures become values; a flow run that is not
        created here as a subflow has no parent task run, and no walk is made.
        """
        if self.flow_run is not None or FlowRunContext.get() is None:
            return {}
        return Upstreams(self.parameters, self.wait_for).inputs

    def _wait_for_upstreams(self) -> None:
        """Wait for the futures in ``wait_for``; remember those that did not complete."""
        if not self.wait_for:
            return
        upstreams = Upstreams(None, self.wait_for)
        for future in upstreams.futures:
            future.wait()
        self._failed_upstreams = upstreams.failed()

    # --- outcomes ---------------------------------------------------------------------------

    def _handle_success(self, value: Any) -> None:
        """The function returned: Completed, or the combination of returned states."""
        # Returned futures become their states, and the caller gets those
        # states back (the seed API's aggregate rule), not their values.
        state = return_value_to_state(resolve_futures_to_states(value))
        if state.is_failed() and self._retry(state.message or state.name):
            return  # a flow that ends Failed is retried like one that raised
        self._finish(state)

    def _handle_exception(self, exc: Exception) -> None:
        """The function raised: retry if allowed, else Failed."""
        if self._retry(exc):
            return
        self.logger.error(
            "Finished in state Failed(%r)",
            f"Flow run encountered an exception: {exc!r}",
            exc_info=exc,  # its traceback on the console and in the run's logs
        )
        state = exception_to_failed_state(
            exc, f"Flow run encountered an exception: {type(exc).__name__}: {exc}"
        )
        self._finish(state, log=False)

    def _handle_timeout(self, exc: BaseException) -> None:
        """The function ran past ``timeout_seconds``: retry if allowed, else TimedOut."""
        if self._retry(exc):
            return
        message = f"Flow run exceeded timeout of {self.flow.timeout_seconds} second(s)"
        self.logger.error(message)
        self._finish(TimedOut(message=message, data=exc), log=False)

    def _finish(self, state: State[Any], log: bool = True) -> None:
        self._persist(state)
        self._set_state(state)
        if log:
            emit = self.logger.info if state.is_completed() else self.logger.error
            emit("Finished in state %s", state)
        self._call_hooks(self._hooks_for(self.state))

    def _retry(self, cause: Any) -> bool:
        """Schedule the next attempt if retries remain: AwaitingRetry with a delay, else now."""
        if self.retries >= self.flow.retries:
            return False
        self.retries += 1
        delay = float(self.flow.retry_delay_seconds or 0)
        self.logger.info(
            "Flow run failed with %r; retry %s/%s.",
            cause,
            self.retries,
            self.flow.retries,
            exc_info=cause if isinstance(cause, BaseException) else None,
        )
        if delay > 0:
            self._set_state(AwaitingRetry(scheduled_time=now() + datetime.timedelta(seconds=delay)))
        else:
            self._begin_retry()
        return True

    def _begin_retry(self) -> None:
        """Enter the next attempt; it reuses the task runs and child flows that completed."""
        # Task runs the last attempt submitted finish first, so that the next
        # attempt sees every one that completed.
        self.task_runner.wait_for_submitted()
        if self._set_state(Retrying()).type != StateType.RUNNING:
            return
        start_attempt(self._context)
        self._call_hooks(self.flow.on_running_hooks)

    def _cancellation_states(self) -> tuple[State[Any], State[Any]]:
        message = "Flow run was cancelled."
        self.logger.info(message)
        return Cancelling(message=message), Cancelled(message=message)

    def _handle_crash(self, exc: BaseException) -> None:
        """The process is being interrupted: Crashed and on_crashed hooks; the caller re-raises."""
        state = exception_to_crashed_state(exc)
        self.logger.error("Crash detected! %s", state.message)
        self._set_state(state, force=True)
        if isinstance(self.store, SharedRunStore) and self.flow_run is not None:
            # As a sweeper would once the lease lapsed: on a fleet, task runs that
            # only this process would have waited for or sent again end with it.
            crash_unfinished_task_runs(self.store, self.flow_run.id, str(state.message))
        self._call_hooks(self.flow.on_crashed_hooks)

    def _hooks_for(self, state: State[Any]) -> list[Any]:
        """The hooks that match a state's type."""
        hooks = {
            StateType.COMPLETED: self.flow.on_completion_hooks,
            StateType.FAILED: self.flow.on_failure_hooks,
            StateType.CANCELLED: self.flow.on_cancellation_hooks,
            StateType.CANCELLING: self.flow.on_cancellation_hooks,
            StateType.CRASHED: self.flow.on_crashed_hooks,
            StateType.RUNNING: self.flow.on_running_hooks,
        }.get(state.type, [])
        return list(hooks)

    def _persist(self, state: State[Any]) -> None:
        if self.result_storage is None or state.result_ref is not None:
            return
        try:
            state.result_ref = self.result_storage.write(state.data)
        except Exception as exc:  # unpicklable return value: keep it in-process only
            self.logger.warning("The flow's result could not be stored: %s", exc)

    def call_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The validated parameters as positional and keyword arguments."""
        return parameters_to_args_kwargs(self.flow.fn, self.parameters)

    def _hook_state(self, state: State[Any] | None) -> State[Any]:
        return state or self.state

    def _call_hooks_for(self, state: State[Any] | None) -> None:
        state = self._hook_state(state)
        previous, self.state = self.state, state
        try:
            self._call_hooks(self._hooks_for(state))
        finally:
            self.state = previous


class FlowRunEngine(BaseFlowRunEngine):
    """The flow run engine for sync functions (and sync generators)."""

    def set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        """Propose ``state`` (mirrored on a subflow's parent task run); the state in effect."""
        return self._set_state(state, force)

    def begin_run(self) -> State[Any]:
        """Validate parameters and propose Running; the state in effect."""
        self._begin_run()
        return self.state

    def handle_success(self, result: Any) -> Any:
        """The function returned ``result``."""
        self._handle_success(result)
        return result

    def handle_exception(self, exc: Exception) -> State[Any]:
        """The function raised ``exc``: retry or Failed."""
        self._handle_exception(exc)
        return self.state

    def handle_timeout(self, exc: BaseException) -> None:
        """The function ran too long: retry or TimedOut."""
        self._handle_timeout(exc)

    def handle_crash(self, exc: BaseException) -> None:
        """The run was interrupted: Crashed."""
        self._handle_crash(exc)

    def call_hooks(self, state: State[Any] | None = None) -> None:
        """Call the hooks that match ``state`` (default: the current state)."""
        self._call_hooks_for(state)

    def handle_cancellation(self, exc: BaseException) -> None:
        """The run is being cancelled from outside: Cancelling, then Cancelled."""
        cancelling, cancelled = self._cancellation_states()
        self.set_state(cancelling, force=True)
        self.set_state(cancelled, force=True)
        self.call_hooks(cancelled)

    def wait_until_ready(self) -> None:
        """Sleep until a scheduled retry is due, then enter it."""
        self.wait_until_ready_sync()

    def call_flow_fn(self) -> None:
        """Call the function once and hand its outcome to the matching handler."""
        self.attempt_sync()

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's value; raises its exception if it did not complete."""
        return self.result_sync(raise_on_failure)

    @contextmanager
    def initialize_run(self) -> Iterator[FlowRunEngine]:
        """Create (or take) the flow run and enter its context and task runner."""
        with self._initialized():
            yield self

    @contextmanager
    def start(self) -> Iterator[None]:
        """Initialize the run and begin it; an interrupt inside (SIGTERM included)
        ends it Crashed."""
        with self._sigterm_scope(), self.initialize_run():
            try:
                if self._should_begin():
                    self.begin_run()
                yield
            except BaseException as exc:
                if is_crash(exc):
                    self.handle_crash(exc)
                raise


class AsyncFlowRunEngine(BaseFlowRunEngine):
    """The flow run engine for coroutine functions (and async generators)."""

    async def set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        """Propose ``state`` (mirrored on a subflow's parent task run); the state in effect."""
        return self._set_state(state, force)

    async def begin_run(self) -> State[Any]:
        """Validate parameters and propose Running; the state in effect."""
        self._begin_run()
        return self.state

    async def handle_success(self, result: Any) -> Any:
        """The function returned ``result``."""
        self._handle_success(result)
        return result

    async def handle_exception(self, exc: Exception) -> State[Any]:
        """The function raised ``exc``: retry or Failed."""
        self._handle_exception(exc)
        return self.state

    async def handle_timeout(self, exc: BaseException) -> None:
        """The function ran too long: retry or TimedOut."""
        self._handle_timeout(exc)

    async def handle_crash(self, exc: BaseException) -> None:
        """The run was interrupted: Crashed."""
        self._handle_crash(exc)

    async def call_hooks(self, state: State[Any] | None = None) -> None:
        """Call the hooks that match ``state`` (default: the current state)."""
        self._call_hooks_for(state)

    async def handle_cancellation(self, exc: BaseException) -> None:
        """The run is being cancelled from outside: Cancelling, then Cancelled."""
        cancelling, cancelled = self._cancellation_states()
        await self.set_state(cancelling, force=True)
        await self.set_state(cancelled, force=True)
        await self.call_hooks(cancelled)

    async def wait_until_ready(self) -> None:
        """Sleep (without blocking the loop) until a scheduled retry is due, then enter it."""
        await self.wait_until_ready_async()

    async def call_flow_fn(self) -> None:
        """Await the function once and hand its outcome to the matching handler."""
        await self.attempt_async()

    async def result(self, raise_on_failure: bool = True) -> Any:
        """The run's value; raises its exception if it did not complete."""
        return self.result_sync(raise_on_failure)

    @asynccontextmanager
    async def initialize_run(self) -> AsyncIterator[AsyncFlowRunEngine]:
        """Create (or take) the flow run and enter its context and task runner."""
        with self._initialized():
            yield self

    @asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        """Initialize the run and begin it; an interrupt inside (SIGTERM included)
        ends it Crashed."""
        with self._sigterm_scope():
            async with self.initialize_run():
                try:
                    if self._should_begin():
                        await self.begin_run()
                    yield
                except BaseException as exc:
                    if is_crash(exc):
                        await self.handle_crash(exc)
                    raise


@contextmanager
def _outside_task_context() -> Iterator[None]:
    # A flow called from inside a task starts a fresh scope: its tasks are not
    # the outer task's children.
    token = TaskRunContext._var.set(None)
    try:
        yield
    finally:
        TaskRunContext._var.reset(token)


# --- drivers ---------------------------------------------------------------------------------


def run_flow_sync(
    flow: Any,
    flow_run: FlowRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    context: dict[str, Any] | None = None,
) -> Any:
    """Run a sync flow to a final state in this thread; its value, or its state."""
    _, parameters, wait_for, return_type = legacy_positional(
        flow_run, parameters, wait_for, return_type
    )
    flow_run = flow_run if isinstance(flow_run, FlowRun) else None
    engine = FlowRunEngine(flow, parameters, flow_run, wait_for, context)
    with engine.start():
        while engine.is_running():
            engine.wait_until_ready()
            engine.call_flow_fn()
    return engine.state if return_type == "state" else engine.result()


async def run_flow_async(
    flow: Any,
    flow_run: FlowRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    context: dict[str, Any] | None = None,
) -> Any:
    """Run an async flow to a final state on the running event loop; its value, or its state."""
    _, parameters, wait_for, return_type = legacy_positional(
        flow_run, parameters, wait_for, return_type
    )
    flow_run = flow_run if isinstance(flow_run, FlowRun) else None
    engine = AsyncFlowRunEngine(flow, parameters, flow_run, wait_for, context)
    async with engine.start():
        while engine.is_running():
            await engine.wait_until_ready()
            await engine.call_flow_fn()
    return engine.state if return_type == "state" else await engine.result()


def _generator_return_type(return_type: Any) -> None:
    if return_type != "result":
        raise ValueError("The return_type for a generator flow must be 'result'")


def run_generator_flow_sync(
    flow: Any,
    flow_run: FlowRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    context: dict[str, Any] | None = None,
) -> Iterator[Any]:
    """Run a generator flow, yielding each value as it comes; returns what it returns."""
    _, parameters, wait_for, return_type = legacy_positional(
        flow_run, parameters, wait_for, return_type
    )
    flow_run = flow_run if isinstance(flow_run, FlowRun) else None
    _generator_return_type(return_type)
    engine = FlowRunEngine(flow, parameters, flow_run, wait_for, context)
    with engine.start():
        return (yield from engine.drive_generator_sync())


async def run_generator_flow_async(
    flow: Any,
    flow_run: FlowRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    context: dict[str, Any] | None = None,
) -> AsyncIterator[Any]:
    """Run an async generator flow, yielding each value as it comes."""
    _, parameters, wait_for, return_type = legacy_positional(
        flow_run, parameters, wait_for, return_type
    )
    flow_run = flow_run if isinstance(flow_run, FlowRun) else None
    _generator_return_type(return_type)
    engine = AsyncFlowRunEngine(flow, parameters, flow_run, wait_for, context)
    async with engine.start():
        async for item in engine.drive_generator_async():
            yield item


def run_flow(
    flow: Any,
    flow_run: FlowRun | None = None,
    parameters: dict[str, Any] | None = None,
    wait_for: Iterable[Any] | None = None,
    return_type: ReturnType = "result",
    error_logger: Any = None,
    context: dict[str, Any] | None = None,
) -> Any:
    """Run ``flow`` the way its function asks: sync, coroutine, or (async) generator.

    Async flows give a coroutine and generator flows an iterator, to await or
    iterate; a sync flow runs to its end here.
    """
    _, parameters, wait_for, return_type = legacy_positional(
        flow_run, parameters, wait_for, return_type
    )
    flow_run = flow_run if isinstance(flow_run, FlowRun) else None
    kwargs: dict[str, Any] = dict(
        flow_run=flow_run,
        parameters=parameters,
        wait_for=wait_for,
        return_type=return_type,
        context=context,
    )
    if is_async_generator_fn(flow.fn):
        return run_generator_flow_async(flow, **kwargs)
    if is_generator_fn(flow.fn):
        return run_generator_flow_sync(flow, **kwargs)
    if flow.is_async:
        return run_flow_async(flow, **kwargs)
    return run_flow_sync(flow, **kwargs)


def run_flow_to_state(
    flow: Any, parameters: dict[str, Any], flow_run: FlowRun | None = None
) -> State[Any]:
    """Run any flow to its final state from synchronous code."""
    from engine.utilities.asyncutils import run_coro_sync

    outcome = run_flow(flow, flow_run=flow_run, parameters=parameters, return_type="state")
    if asyncio.iscoroutine(outcome):
        return run_coro_sync(outcome)
    return outcome


def read_flow_run_state(flow_run_id: uuid.UUID) -> State[Any] | None:
    """The current state of a flow run in the store, or None if unknown."""
    try:
        return get_store().read_flow_run(flow_run_id).state
    except ObjectNotFound:
        return None


from engine.subprocess_runs import read_subprocess_result, run_flow_in_subprocess  # noqa: E402

__all__ = [
    "AsyncFlowRunEngine",
    "BaseFlowRunEngine",
    "FlowRunEngine",
    "run_flow",
    "run_flow_async",
    "run_flow_in_subprocess",
    "run_flow_sync",
    "run_flow_to_state",
    "read_subprocess_result",
]
