"""The flow run state machine, and the drivers that run a flow in this process or another.

``FlowRunEngine`` creates the flow run (a child run linked to a parent task run
when called inside another flow), validates parameters, moves through
Running -> Completed / Failed / TimedOut / Crashed, and calls the flow's hooks.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from pydantic_core import to_jsonable_python

from engine.context import FlowRunContext, TagsContext
from engine.exceptions import (
    Abort,
    FlowRunLost,
    FlowRunTimeoutError,
    ObjectNotFound,
    ParameterTypeError,
)
from engine.flow_attempts import retry_fields, start_attempt
from engine.futures import resolve_futures_to_states
from engine.leases import lease_keeper
from engine.logging import get_run_logger, patch_print
from engine.orchestration import SetStateStatus
from engine.results import ResultStorage, resolve_storage
from engine.schemas import FlowRun, TaskRun
from engine.states import (
    AwaitingRetry,
    Failed,
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
from engine.utilities.callables import (
    is_async_generator_fn,
    is_generator_fn,
    parameters_to_args_kwargs,
)
from engine.utilities.timeout import call_with_timeout


def jsonable_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON-friendly values for the store (anything else by repr)."""
    return to_jsonable_python(parameters, fallback=repr)


class FlowRunEngine:
    """Runs one flow run through its states; one method per outcome."""

    def __init__(
        self, flow: Any, parameters: dict[str, Any], flow_run: FlowRun | None = None
    ) -> None:
        self.flow = flow
        self.parameters = parameters
        self.store = get_store()
        self.parent_task_run: TaskRun | None = None
        self.validation_error: ParameterTypeError | None = None
        if flow.should_validate_parameters:
            try:
                self.parameters = flow.validate_parameters(parameters)
            except ParameterTypeError as exc:
                self.validation_error = exc
        self.flow_run = flow_run or self._create_flow_run()
        self.state: State[Any] = self.flow_run.state or Pending()
        self.retries_done = 0
        self.task_runner: Any = None
        self.result_storage: ResultStorage | None = None
        self._context: FlowRunContext | None = None

    @property
    def logger(self) -> Any:
        return get_run_logger(self._context) if self._context else get_run_logger()

    # --- creating the run ---------------------------------------------------------------------

    def _create_flow_run(self) -> FlowRun:
        parent = FlowRunContext.get()
        if parent is not None:
            self.parent_task_run = self._create_parent_task_run(parent)
        run_id = uuid.uuid4()
        state = Pending()
        state.state_details.flow_run_id = run_id
        flow_run = FlowRun(
            id=run_id,
            name=self.flow.resolve_run_name(self.parameters, run_id),
            flow_name=self.flow.name,
            flow_version=self.flow.version,
            parameters=jsonable_parameters(self.parameters),
            tags=sorted(TagsContext.get().current_tags | self.flow.tags),
            parent_task_run_id=self.parent_task_run.id if self.parent_task_run else None,
            parent_flow_run_id=parent.flow_run.id if parent else None,
            state=state,
            **retry_fields(self.flow, self.parameters, self.store),
        )
        return self.store.create_flow_run(flow_run)

    def _create_parent_task_run(self, parent: FlowRunContext) -> TaskRun:
        run_id = uuid.uuid4()
        state = Pending()
        state.state_details.task_run_id = run_id
        state.state_details.flow_run_id = parent.flow_run.id
        task_run = TaskRun(
            id=run_id,
            name=f"{self.flow.name}-{run_id.hex[:3]}",
            flow_run_id=parent.flow_run.id,
            task_key=f"subflow:{self.flow.name}",
            tags=sorted(TagsContext.get().current_tags),
            state=state,
        )
        return self.store.create_task_run(task_run)

    # --- transitions -------------------------------------------------------------------------

    def set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        """Propose ``state`` for the flow run (and mirror it on the parent task run)."""
        state.state_details.flow_run_id = self.flow_run.id
        while True:
            try:
                outcome = self.store.propose_state(self.flow_run.id, state, force=force)
            except ObjectNotFound:
                raise FlowRunLost(
                    f"Flow run {self.flow_run.id} ({self.flow_run.name!r}) is no longer in the "
                    f"run store ({self.store!r}): was Redis restarted without persistence, or "
                    "its keys deleted? Its outcome cannot be recorded; this process stops it."
                ) from None
            if outcome.status != SetStateStatus.WAIT:
                break
            time.sleep(outcome.delay_seconds or 0)
        if outcome.status == SetStateStatus.ABORT:
            raise Abort(outcome.reason or "Flow run was aborted.")
        if outcome.status == SetStateStatus.ACCEPT:
            self._accept(state)
            self._mirror_on_parent(state)
        elif outcome.state is not None:
            self.state = outcome.state
        return self.state

    def _accept(self, state: State[Any]) -> None:
        if state.is_running():
            self.flow_run.run_count += 1
            self.flow_run.start_time = self.flow_run.start_time or state.timestamp
        if state.is_final():
            self.flow_run.end_time = state.timestamp
        self.flow_run.state = state
        self.state = state

    def _mirror_on_parent(self, state: State[Any]) -> None:
        if self.parent_task_run is None or state.name == "Retrying":
            return
        mirrored = state.fresh_copy(result_ref=state.result_ref)
        mirrored.state_details = state.state_details.model_copy(
            update={
                "task_run_id": self.parent_task_run.id,
                "flow_run_id": self.parent_task_run.flow_run_id,
                "child_flow_run_id": self.flow_run.id,
            }
        )
        self.store.propose_state(self.parent_task_run.id, mirrored)

    def begin_run(self) -> bool:
        """Validate parameters and move to Running; False if the run must not execute."""
        if self.validation_error is not None:
            # Prefect's wording, so code that reads the state message ports unchanged
            message = f"Validation of flow parameters failed with error: {self.validation_error}"
            self.logger.error("%s", message)
            self.set_state(Failed(message=message, data=self.validation_error))
            self.run_hooks(self.flow.on_failure_hooks)
            return False
        if self.set_state(Running()).type != StateType.RUNNING:
            return False
        # A run resumed in a new process has used attempts already.
        self.retries_done = max(self.flow_run.run_count - 1, 0)
        start_attempt(self._context)
        if self.flow_run.run_count == 1:
            self.logger.info(
                "Beginning flow run %r for flow %r", self.flow_run.name, self.flow.name
            )
        self.run_hooks(self.flow.on_running_hooks)
        return True

    def handle_success(self, retval: Any) -> None:
        """The function returned: Completed, or the combination of returned states."""
        # Returned futures become their states, and the caller gets those
        # states back (the seed API's aggregate rule), not their values.
        state = return_value_to_state(resolve_futures_to_states(retval))
        self._persist(state)
        self.set_state(state)
        log = self.logger.info if state.is_completed() else self.logger.error
        log("Finished in state %s", state)
        self.run_final_hooks()

    def handle_exception(self, exc: BaseException) -> bool:
        """The function raised: retry if allowed (True), else Failed."""
        if self.retries_done < self.flow.retries:
            self.handle_retry(exc)
            return True
        self.logger.error(
            "Finished in state Failed(%r)", f"Flow run encountered an exception: {exc!r}"
        )
        state = exception_to_failed_state(
            exc, f"Flow run encountered an exception: {type(exc).__name__}: {exc}"
        )
        self._persist(state)
        self.set_state(state)
        self.run_final_hooks()
        return False

    def handle_timeout(self, exc: FlowRunTimeoutError) -> None:
        """The function ran past ``timeout_seconds``: TimedOut."""
        message = f"Flow run exceeded timeout of {self.flow.timeout_seconds} second(s)"
        self.logger.error(message)
        state = TimedOut(message=message, data=exc)
        self._persist(state)
        self.set_state(state)
        self.run_final_hooks()

    def handle_retry(self, exc: BaseException) -> None:
        """Schedule the next attempt (AwaitingRetry when there is a delay)."""
        self.retries_done += 1
        delay = self.flow.retry_delay_seconds
        self.logger.info(
            "Flow run failed with %r; retry %s/%s.", exc, self.retries_done, self.flow.retries
        )
        if delay > 0:
            import datetime

            self.set_state(AwaitingRetry(scheduled_time=now() + datetime.timedelta(seconds=delay)))

    def begin_retry(self) -> None:
        """Enter the next attempt after any delay; it reuses the task runs that completed."""
        self.set_state(Retrying())
        start_attempt(self._context)

    def handle_crash(self, exc: BaseException) -> None:
        """The process is being interrupted: Crashed and on_crashed hooks; the caller re-raises."""
        state = exception_to_crashed_state(exc)
        self.logger.error("Crash detected! %s", state.message)
        self.set_state(state, force=True)
        self.run_final_hooks()

    def run_final_hooks(self) -> None:
        """The hooks that match the final state's type."""
        hooks = {
            StateType.COMPLETED: self.flow.on_completion_hooks,
            StateType.FAILED: self.flow.on_failure_hooks,
            StateType.CANCELLED: self.flow.on_cancellation_hooks,
            StateType.CRASHED: self.flow.on_crashed_hooks,
        }.get(self.state.type, [])
        self.run_hooks(hooks)

    def run_hooks(self, hooks: list[Callable[..., Any]]) -> None:
        """Call each hook with (flow, flow_run, state); errors are logged, never raised."""
        from engine.utilities.asyncutils import run_coro_sync

        for hook in hooks:
            name = getattr(hook, "__name__", repr(hook))
            try:
                outcome = hook(self.flow, self.flow_run, self.state)
                if asyncio.iscoroutine(outcome):
                    run_coro_sync(outcome)
            except Exception:
                self.logger.exception("An error was encountered while running hook %r", name)
            else:
                self.logger.info("Hook %r finished running successfully", name)

    def _persist(self, state: State[Any]) -> None:
        if self.result_storage is None or state.result_ref is not None:
            return
        try:
            state.result_ref = self.result_storage.write(state.data)
        except Exception as exc:  # unpicklable return value: keep it in-process only
            self.logger.warning("The flow's result could not be stored: %s", exc)

    # --- context ------------------------------------------------------------------------------

    @contextmanager
    def run_context(self) -> Iterator[None]:
        """The flow run context, with its task runner started and print capture if asked."""
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
            flow_run=self.flow_run,
            parameters=self.parameters,
            task_runner=runner,
            result_storage=self.result_storage,
            log_prints=log_prints,
        )
        with ExitStack() as stack:
            stack.enter_context(self._context)
            # Renewed while this process runs the flow: a sweeper ends the run
            # Crashed once the lease lapses (the process died).
            stack.enter_context(lease_keeper.holding(self.store, self.flow_run.id))
            stack.enter_context(patch_print(log_prints))
            stack.enter_context(_outside_task_context())
            stack.enter_context(runner)
            yield

    def call_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The validated parameters as positional and keyword arguments."""
        return parameters_to_args_kwargs(self.flow.fn, self.parameters)

    def result(self, return_type: ReturnType) -> Any:
        """What the caller gets: the final state or its value."""
        if return_type == "state":
            return self.state
        return self.state.result()


@contextmanager
def _outside_task_context() -> Iterator[None]:
    # A flow called from inside a task starts a fresh scope: its tasks are not
    # the outer task's children.
    from engine.context import TaskRunContext as _T

    token = _T._var.set(None)
    try:
        yield
    finally:
        _T._var.reset(token)


# --- drivers ---------------------------------------------------------------------------------


def _attempts_sync(engine: FlowRunEngine) -> None:
    while True:
        try:
            args, kwargs = engine.call_args()
            retval = call_with_timeout(
                functools.partial(engine.flow.fn, *args, **kwargs),
                engine.flow.timeout_seconds,
                lambda: FlowRunTimeoutError(f"Flow run exceeded {engine.flow.timeout_seconds}s."),
            )
        except FlowRunTimeoutError as exc:
            engine.handle_timeout(exc)
            return
        except Exception as exc:
            if not engine.handle_exception(exc):
                return
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(retval)
            return
        time.sleep(engine.flow.retry_delay_seconds)
        engine.begin_retry()


def run_flow_sync(
    flow: Any,
    parameters: dict[str, Any],
    flow_run: FlowRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
) -> Any:
    """Run a sync flow to a final state in this thread."""
    _wait_for_upstreams(wait_for)
    engine = FlowRunEngine(flow, parameters, flow_run)
    with engine.run_context():
        if engine.begin_run():
            _attempts_sync(engine)
    return engine.result(return_type)


async def _attempts_async(engine: FlowRunEngine) -> None:
    while True:
        try:
            args, kwargs = engine.call_args()
            retval = await asyncio.wait_for(
                engine.flow.fn(*args, **kwargs), engine.flow.timeout_seconds
            )
        except (TimeoutError, FlowRunTimeoutError):
            engine.handle_timeout(
                FlowRunTimeoutError(f"Flow run exceeded {engine.flow.timeout_seconds}s.")
            )
            return
        except Exception as exc:
            if not engine.handle_exception(exc):
                return
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(retval)
            return
        await asyncio.sleep(engine.flow.retry_delay_seconds)
        engine.begin_retry()


async def run_flow_async(
    flow: Any,
    parameters: dict[str, Any],
    flow_run: FlowRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
) -> Any:
    """Run an async flow to a final state on the running event loop."""
    _wait_for_upstreams(wait_for)
    engine = FlowRunEngine(flow, parameters, flow_run)
    with engine.run_context():
        if engine.begin_run():
            await _attempts_async(engine)
    return engine.result(return_type)


def run_generator_flow_sync(
    flow: Any,
    parameters: dict[str, Any],
    flow_run: FlowRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
) -> Iterator[Any]:
    """Run a generator flow, yielding each value to the caller as it comes."""
    engine = FlowRunEngine(flow, parameters, flow_run)
    with engine.run_context():
        if not engine.begin_run():
            engine.result(return_type)
            return
        args, kwargs = engine.call_args()
        try:
            yield from engine.flow.fn(*args, **kwargs)
        except Exception as exc:
            engine.handle_exception(exc)
            engine.result(return_type)
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(None)


async def run_generator_flow_async(
    flow: Any,
    parameters: dict[str, Any],
    flow_run: FlowRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
) -> AsyncIterator[Any]:
    """Run an async generator flow, yielding each value as it comes."""
    engine = FlowRunEngine(flow, parameters, flow_run)
    with engine.run_context():
        if not engine.begin_run():
            engine.result(return_type)
            return
        args, kwargs = engine.call_args()
        try:
            async for item in engine.flow.fn(*args, **kwargs):
                yield item
        except Exception as exc:
            engine.handle_exception(exc)
            engine.result(return_type)
        except BaseException as exc:
            engine.handle_crash(exc)
            raise
        else:
            engine.handle_success(None)


def _wait_for_upstreams(wait_for: Any) -> None:
    if wait_for:
        from engine.futures import wait

        wait([f for f in wait_for if hasattr(f, "wait")])


def run_flow(
    flow: Any,
    parameters: dict[str, Any],
    flow_run: FlowRun | None = None,
    wait_for: Any = None,
    return_type: ReturnType = "result",
) -> Any:
    """Run ``flow`` the way its function asks: sync, coroutine, or (async) generator."""
    if is_async_generator_fn(flow.fn):
        return run_generator_flow_async(flow, parameters, flow_run, wait_for, return_type)
    if is_generator_fn(flow.fn):
        return run_generator_flow_sync(flow, parameters, flow_run, wait_for, return_type)
    if flow.is_async:
        return run_flow_async(flow, parameters, flow_run, wait_for, return_type)
    return run_flow_sync(flow, parameters, flow_run, wait_for, return_type)


def run_flow_to_state(
    flow: Any, parameters: dict[str, Any], flow_run: FlowRun | None = None
) -> State[Any]:
    """Run any flow to its final state from synchronous code."""
    from engine.utilities.asyncutils import run_coro_sync

    outcome = run_flow(flow, parameters, flow_run, return_type="state")
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
    "FlowRunEngine",
    "run_flow",
    "run_flow_sync",
    "run_flow_async",
    "run_flow_to_state",
    "run_flow_in_subprocess",
    "read_subprocess_result",
]
