"""What the flow run and task run engines share.

``BaseRunEngine`` holds one run (a flow run or a task run) and its current
state: the set-state loop (a proposal to the run store, waiting when the store
says WAIT), the run fields that change on acceptance (``entering_fields``, the
same rule the stores apply), calling hooks, and the attempt loop that calls the
user's function and hands each outcome to a handler (``handle_success``,
``handle_exception``, ``handle_timeout``, ``handle_crash``). The flow and task
engines add what differs: how a run is created and proposed, what a retry
needs, and the context a run executes in. Each has a sync and an async engine;
the async one awaits the function and sleeps without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from engine.exceptions import Abort, MissingContextError, Pause
from engine.orchestration import OrchestrationResult, SetStateStatus, entering_fields
from engine.states import State, StateType, now
from engine.utilities.asyncutils import run_coro_sync
from engine.utilities.timeout import call_with_timeout

_ONE_MICROSECOND = datetime.timedelta(microseconds=1)



def is_crash(exc: BaseException) -> bool:
    """Whether ``exc`` escaping a run means the run crashed (an interrupt, an exit)."""
    return not isinstance(exc, (Exception, GeneratorExit, Abort, Pause))

class BaseRunEngine:
    """One run moving through its states; subclasses say how to propose and what to call."""

    state: State[Any]
    store: Any = None
    #: "flow" or "task": the word in log and error messages.
    kind = "run"

    #: The attribute that holds the run record ("flow_run" or "task_run").
    record_attr = "run_record"

    @property
    def run(self) -> Any:
        """The run record (a FlowRun or a TaskRun); it must exist."""
        record = getattr(self, self.record_attr)
        assert record is not None, f"The {self.kind} run is not created yet."
        return record

    @property
    def owner(self) -> Any:
        """The Flow or Task the run belongs to."""
        raise NotImplementedError

    @property
    def logger(self) -> Any:
        raise NotImplementedError

    def _propose(self, state: State[Any], force: bool) -> OrchestrationResult:
        raise NotImplementedError

    # --- the set-state loop ---------------------------------------------------------------

    def _set_state(self, state: State[Any], force: bool = False) -> State[Any]:
        """Propose ``state``; on acceptance it becomes the run's state. The state in effect."""
        run = getattr(self, self.record_attr)
        current = run.state
        if current is not None and state.timestamp <= current.timestamp:
            # States are ordered by time: one made in the same clock tick
            # as the last must still come after it.
            state.timestamp = current.timestamp + _ONE_MICROSECOND
        while True:
            outcome = self._propose(state, force)
            if outcome.status != SetStateStatus.WAIT:
                break
            time.sleep(outcome.delay_seconds or 0)
        if outcome.status == SetStateStatus.ABORT:
            raise Abort(outcome.reason or f"{self.kind.title()} run was aborted.")
        if outcome.status == SetStateStatus.ACCEPT:
            self._accept(state, run)
        elif outcome.state is not None:
            self.state = outcome.state
        return self.state

    def _accept(self, state: State[Any], run: Any) -> None:
        for name, value in entering_fields(run, state).items():
            setattr(run, name, value)
        self.state = state

    @property
    def client(self) -> Any:
        """The run store this engine proposes to (Prefect's engines expose their API client).

        Raises RuntimeError before the engine has created or taken its run.
        """
        if self.store is None or getattr(self, self.record_attr) is None:
            raise RuntimeError("Engine has not started.")
        return self.store

    def is_running(self) -> bool:
        """Whether another attempt is due: Running, or Scheduled for a retry."""
        return self.state.type in (StateType.RUNNING, StateType.SCHEDULED)

    def is_pending(self) -> bool:
        """Whether the run has not started yet."""
        return self.state.is_pending()

    # --- hooks ------------------------------------------------------------------------------

    def _call_hooks(self, hooks: list[Callable[..., Any]]) -> None:
        """Call each hook with (flow or task, run, state); errors are logged, never raised."""
        for hook in hooks:
            name = getattr(hook, "__name__", repr(hook))
            self.logger.info("Running hook %r in response to entering state %r", name,
                             self.state.name)
            try:
                outcome = hook(self.owner, getattr(self, self.record_attr), self.state)
                if asyncio.iscoroutine(outcome):
                    run_coro_sync(outcome)
            except Exception:
                self.logger.exception("An error was encountered while running hook %r", name)
            else:
                self.logger.info("Hook %r finished running successfully", name)

    # --- calling the function -----------------------------------------------------------------

    #: Whether a coroutine the function returns is awaited as part of the run.
    awaits_returned_coroutines = False

    #: The exception type of a run that ran past its ``timeout_seconds``.
    timeout_exception: type[BaseException] = TimeoutError

    @property
    def timeout_seconds(self) -> float | None:
        return self.owner.timeout_seconds

    def timeout_error(self) -> BaseException:
        """The exception a run that ran too long ends with."""
        return self.timeout_exception(
            f"{self.kind.title()} run timed out after {self.timeout_seconds} second(s)."
        )

    def call_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The function's positional and keyword arguments for this attempt."""
        raise NotImplementedError

    def seconds_until_ready(self) -> float:
        """Seconds before a scheduled retry may start (0 when it may start now)."""
        scheduled = self.state.state_details.scheduled_time
        if not self.state.is_scheduled() or scheduled is None:
            return 0.0
        return max((scheduled - now()).total_seconds(), 0.0)

    def attempt_sync(self) -> None:
        """Call the sync function once under the timeout and hand the outcome on."""
        args, kwargs = self.call_args()
        try:
            value = call_with_timeout(
                functools.partial(self.owner.fn, *args, **kwargs),
                self.timeout_seconds,
                self.timeout_error,
            )
        except BaseException as exc:
            self._handle_raised(exc)
        else:
            self._handle_success(value)

    async def attempt_async(self) -> None:
        """Await the coroutine function once under the timeout and hand the outcome on."""
        args, kwargs = self.call_args()
        try:
            value = await asyncio.wait_for(self.owner.fn(*args, **kwargs), self.timeout_seconds)
            if self.awaits_returned_coroutines and asyncio.iscoroutine(value):
                value = await value  # e.g. ``return some_async_task()`` without ``await``
        except TimeoutError:
            self._handle_raised(self.timeout_error())
        except BaseException as exc:
            self._handle_raised(exc)
        else:
            self._handle_success(value)

    def _handle_raised(self, exc: BaseException) -> None:
        if isinstance(exc, self.timeout_exception):
            self._handle_timeout(exc)
        elif isinstance(exc, Exception):
            self._handle_exception(exc)
        else:
            raise exc  # an interrupt: the run's crash handler sees it on the way out

    # The handlers: each subclass says what an outcome does to its run.

    def _handle_success(self, value: Any) -> None:
        raise NotImplementedError

    def _handle_exception(self, exc: Exception) -> None:
        raise NotImplementedError

    def _handle_timeout(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _handle_crash(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _begin_retry(self) -> None:
        raise NotImplementedError

    # --- generator functions ------------------------------------------------------------------

    def drive_generator_sync(self) -> Iterator[Any]:
        """Run a generator function attempt by attempt, yielding its values as they come.

        A failed attempt that may retry starts the generator again (its values
        are emitted again); the timeout covers the whole attempt; what the
        generator returns is the run's result.
        """
        while self.is_running():
            self.wait_until_ready_sync()
            args, kwargs = self.call_args()
            deadline = _deadline(self.timeout_seconds)
            generator = self.owner.fn(*args, **kwargs)
            while True:
                try:
                    value = call_with_timeout(
                        functools.partial(next, generator), _remaining(deadline),
                        self.timeout_error,
                    )
                except StopIteration as stop:
                    self._handle_success(stop.value)
                    break
                except BaseException as exc:
                    self._handle_raised(exc)
                    break
                try:
                    yield value
                except GeneratorExit:  # the caller stopped early: what ran counts as done
                    self._handle_success(None)
                    generator.close()
                    raise
        return self.result_sync()

    async def drive_generator_async(self) -> AsyncIterator[Any]:
        """``drive_generator_sync`` for async generator functions."""
        while self.is_running():
            await self.wait_until_ready_async()
            args, kwargs = self.call_args()
            deadline = _deadline(self.timeout_seconds)
            generator = self.owner.fn(*args, **kwargs)
            while True:
                try:
                    value = await asyncio.wait_for(generator.__anext__(), _remaining(deadline))
                except StopAsyncIteration:
                    self._handle_success(None)
                    break
                except TimeoutError:
                    self._handle_raised(self.timeout_error())
                    break
                except BaseException as exc:
                    self._handle_raised(exc)
                    break
                yield value
        if not self.state.is_completed():
            self.result_sync()  # raises the run's exception

    def wait_until_ready_sync(self) -> None:
        """Sleep until a scheduled retry is due, then start it."""
        if self.state.is_scheduled():
            time.sleep(self.seconds_until_ready())
            self._begin_retry()

    async def wait_until_ready_async(self) -> None:
        """``wait_until_ready_sync`` without blocking the event loop."""
        if self.state.is_scheduled():
            await asyncio.sleep(self.seconds_until_ready())
            self._begin_retry()

    def result_sync(self, raise_on_failure: bool = True) -> Any:
        """The run's value (raising its exception if it did not complete)."""
        return self.state.result(raise_on_failure=raise_on_failure)


def engine_logger(context: Any) -> Any:
    """The run logger of ``context`` (else of the active run), or the engine's own logger."""
    from engine.logging import get_run_logger

    try:
        return get_run_logger(context) if context is not None else get_run_logger()
    except MissingContextError:  # an engine not started yet, outside any run
        return logging.getLogger("celerity.engine")


def _deadline(timeout: float | None) -> float | None:
    return time.monotonic() + timeout if timeout else None


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    # A deadline already passed still needs a positive timeout to raise.
    return max(deadline - time.monotonic(), 1e-6)


def legacy_positional(
    first: Any, parameters: Any, wait_for: Any, return_type: Any
) -> tuple[Any, Any, Any, Any]:
    """Accept the older positional order ``(obj, parameters, run, wait_for, return_type)``.

    The seed API's order is ``(obj, run_id, run, parameters, wait_for, return_type)``
    (flows: ``(flow, flow_run, parameters, ...)``); a dict in ``first``, the run id's
    place, can only be parameters passed the older way, which shifts the later
    positions by one. Returns (run_id, parameters, wait_for, return_type).
    """
    if not isinstance(first, dict):
        return first, parameters, wait_for, return_type
    real_return_type = wait_for if isinstance(wait_for, str) else return_type
    real_wait_for = parameters
    if real_wait_for is None and not isinstance(wait_for, str):
        real_wait_for = wait_for  # passed by keyword
    return None, first, real_wait_for, real_return_type


__all__ = ["BaseRunEngine", "engine_logger", "legacy_positional"]
