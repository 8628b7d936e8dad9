"""Futures for task runs: returned at once by ``submit`` / ``map``.

A future is completed with the run's final state by whichever runner ran it
(a thread of this process, a process of a pool, or the coordinator's listener
for Celery workers). Until then ``future.state`` reads the current state from
the run store.

A flow may hold tens of thousands of futures, so each one is small: slots, no
lock or event of its own (one process-wide condition wakes waiters), and a
final state that may stay as the JSON it arrived in until someone looks at it.

Prefect's names map onto this one concept: ``PrefectFuture`` is ``BaseFuture``;
``PrefectWrappedFuture`` / ``PrefectConcurrentFuture`` are futures completed by
another future they wrap (or that mirror themselves into one, for code that
reads ``wrapped_future``); ``PrefectDistributedFuture`` is a future for a run
that some other process runs, completed from the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from engine.context import FlowRunContext
from engine.states import Cancelled, Completed, Failed, Pending, State
from engine.utilities.collections import visit_collection

R = TypeVar("R")
F = TypeVar("F")

# One condition for every future: completing a future notifies all waiters,
# which then check their own future. Few threads wait at once, and this saves
# a lock and an event per future.
_completed = threading.Condition(threading.Lock())
# How a completed state's JSON says its type (pydantic writes no spaces).
_COMPLETED_MARK = b'"type":"COMPLETED"'


class BaseFuture(Generic[R]):
    """A task run in progress; completed once with its final state."""

    # ``__dict__`` costs a pointer until used: code may tag a future with its
    # own attributes (``future.parameters = ...``), as Prefect's futures allow.
    __slots__ = (
        "task_run_id",
        "_final_state",
        "_final_json",
        "_callbacks",
        "__weakref__",
        "__dict__",
    )

    def __init__(self, task_run_id: uuid.UUID) -> None:
        self.task_run_id = task_run_id
        self._final_state: State[R] | None = None
        self._final_json: bytes | None = None
        self._callbacks: list[Callable[[BaseFuture[R]], None]] | None = None

    # --- completion (runner side) -----------------------------------------------

    def set_final_state(self, state: State[R]) -> None:
        """Complete the future; runs done callbacks once."""
        self._complete(state, None)

    def set_final_state_json(self, raw: bytes) -> None:
        """Complete the future with a state still in JSON form (parsed when first read)."""
        self._complete(None, raw)

    def _complete(self, state: State[R] | None, raw: bytes | None) -> None:
        with _completed:
            if self.done():
                return
            self._final_state, self._final_json = state, raw
            callbacks, self._callbacks = self._callbacks or [], None
            _completed.notify_all()
        _call_all(callbacks, self)

    # --- user side ------------------------------------------------------------------

    def done(self) -> bool:
        """True once the run has a final state (NotReady counts: it will never run)."""
        return self._final_state is not None or self._final_json is not None

    def completed(self) -> bool:
        """True if the run finished Completed (without building the state when it is JSON)."""
        raw = self._final_json
        if raw is not None:
            return _COMPLETED_MARK in raw
        return self.done() and self.state.is_completed()

    @property
    def state(self) -> State[R]:
        """The final state if done, else the run's current state in the store."""
        if self._final_state is None and self._final_json is not None:
            self._final_state = State.model_validate_json(self._final_json)
            self._final_json = None
        if self._final_state is not None:
            return self._final_state
        return self._current_state()

    def _current_state(self) -> State[R]:
        from engine.store import get_store

        try:
            state = get_store().read_task_run(self.task_run_id).state
        except Exception:  # not stored yet: the submitter still holds it
            state = None
        return state or Pending()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is final or ``timeout`` seconds pass."""
        self._wait(timeout)
        raise_if_suspension_requested()

    def _wait(self, timeout: float | None) -> None:
        if self.done():
            return
        deadline = _deadline(timeout)
        with _completed:
            while not self.done():
                remaining = _remaining(deadline)
                if remaining == 0.0:
                    return
                _completed.wait(remaining)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The run's value; raises its exception, or TimeoutError if not done in time."""
        self.wait(timeout)
        if not self.done():
            raise TimeoutError(f"Task run {self.task_run_id} did not finish within {timeout}s.")
        # Always the value, even in async code (a future's result is not awaitable).
        return self.state.result(raise_on_failure=raise_on_failure, _sync=True)

    def add_done_callback(self, fn: Callable[[BaseFuture[R]], None]) -> None:
        """Call ``fn(future)`` once the run is final (at once if it already is)."""
        with _completed:
            if not self.done():
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        _call_all([fn], self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_run_id={self.task_run_id})"

    def __hash__(self) -> int:
        return hash(self.task_run_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseFuture) and other.task_run_id == self.task_run_id


def raise_if_suspension_requested() -> None:
    """Raise Pause when the current flow run was asked to suspend (checked at every wait).

    A flow run context may carry a ``flow_run_suspension_request``; waiting on
    a future is a point where the flow run can stop, as in Prefect.
    """
    request = getattr(FlowRunContext.get(), "flow_run_suspension_request", None)
    if request is not None:
        request.raise_if_requested()


def _call_all(callbacks: list[Callable[[Any], None]], future: BaseFuture[Any]) -> None:
    """Run every callback; a KeyboardInterrupt (or the like) is re-raised after the rest ran.

    Waiters that register callbacks (``as_completed``) must hear of the
    completion even when a user's callback before theirs raises.
    """
    interrupt: BaseException | None = None
    for callback in callbacks:
        try:
            callback(future)
        except Exception:  # a user's callback must not break the runner
            from engine.logging import get_logger

            get_logger("futures").exception("Done callback %r raised an error.", callback)
        except BaseException as exc:
            interrupt = interrupt or exc
    if interrupt is not None:
        raise interrupt


# --- futures that wrap another future ---------------------------------------------------


class PrefectWrappedFuture(BaseFuture[R], Generic[R, F]):
    """A future tied to another future object (``wrapped_future``).

    Given one, this future completes when it does: a State result is the final
    state, another value becomes Completed with it, an exception becomes
    Failed. Without one (the runners' futures), ``wrapped_future`` is made on
    first read and receives this future's final state.
    """

    __slots__ = ("_wrapped",)

    def __init__(self, task_run_id: uuid.UUID, wrapped_future: F | None = None) -> None:
        super().__init__(task_run_id)
        self._wrapped: Any = wrapped_future
        if wrapped_future is not None:
            wrapped_future.add_done_callback(self._wrapped_done)  # type: ignore[attr-defined]

    @property
    def wrapped_future(self) -> F:
        """The future object this one is tied to."""
        if self._wrapped is None:
            self._mirror_into_new_future()
        return self._wrapped

    def _mirror_into_new_future(self) -> None:
        mirror: concurrent.futures.Future[State[R]] = concurrent.futures.Future()
        with _completed:
            if self._wrapped is not None:
                return
            self._wrapped = mirror
        self.add_done_callback(lambda future: mirror.set_result(future.state))

    def _wrapped_done(self, wrapped: Any) -> None:
        if not self.done():
            self.set_final_state(_outcome_state(wrapped))


def _outcome_state(wrapped: Any) -> State[Any]:
    """The final state a finished wrapped future stands for."""
    if wrapped.cancelled():
        return Cancelled(message="The wrapped future was cancelled.")
    try:
        outcome = wrapped.result()
    except Exception as exc:
        return Failed(message=f"The wrapped future raised {exc!r}.", data=exc)
    if isinstance(outcome, State):
        return outcome
    return Completed(data=outcome)


class PrefectConcurrentFuture(PrefectWrappedFuture[R, "concurrent.futures.Future[Any]"]):
    """A future tied to a ``concurrent.futures.Future`` (the thread and process pools')."""

    __slots__ = ()


class PrefectDistributedFuture(BaseFuture[R]):
    """A future for a task run that another process runs, known only by its id.

    A runner that watches the run completes it like any future; otherwise
    ``wait`` reads the run's state from the store until it is final.
    """

    __slots__ = ()

    # How often a waiter re-reads the store: starts fast, backs off to a cap.
    FIRST_POLL_SECONDS = 0.01
    MAX_POLL_SECONDS = 0.5

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is final in the store or ``timeout`` seconds pass."""
        deadline = _deadline(timeout)
        interval = self.FIRST_POLL_SECONDS
        while not self._complete_from_store():
            remaining = _remaining(deadline)
            if remaining == 0.0:
                break
            self._wait(interval if remaining is None else min(interval, remaining))
            interval = min(interval * 2, self.MAX_POLL_SECONDS)
        raise_if_suspension_requested()

    def _complete_from_store(self) -> bool:
        if self.done():
            return True
        state = self._current_state()
        if state.is_final():
            self.set_final_state(state)
        return self.done()

    async def wait_async(self, timeout: float | None = None) -> None:
        """``wait`` for coroutines: the blocking part runs in a helper thread."""
        await asyncio.to_thread(self.wait, timeout)

    async def result_async(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """``result`` for coroutines."""
        return await asyncio.to_thread(self.result, timeout, raise_on_failure)

    def add_done_callback(self, fn: Callable[[BaseFuture[R]], None]) -> None:
        """Call ``fn(future)`` once the run is final; a final run in the store counts."""
        self._complete_from_store()
        super().add_done_callback(fn)


class PrefectFlowRunFuture(PrefectDistributedFuture[R]):
    """A future for a flow run known by its id, completed from the store.

    It keeps the flow run's id where task run futures keep theirs
    (``task_run_id``); ``flow_run_id`` names it.
    """

    __slots__ = ()

    def __init__(self, flow_run_id: uuid.UUID) -> None:
        super().__init__(flow_run_id)

    @property
    def flow_run_id(self) -> uuid.UUID:
        """The id of the flow run this future stands for."""
        return self.task_run_id

    def _current_state(self) -> State[R]:
        from engine.store import get_store

        try:
            state = get_store().read_flow_run(self.task_run_id).state
        except Exception:  # not stored yet
            state = None
        return state or Pending()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(flow_run_id={self.task_run_id})"


# --- many futures ------------------------------------------------------------------------


class FutureList(list[BaseFuture[R]]):
    """The futures returned by ``Task.map``, with ``wait`` and ``result`` for all."""

    def wait(self, timeout: float | None = None) -> None:
        """Block until every run is final or ``timeout`` passes."""
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every run's value in list order; raises the first failure to finish.

        A failure is raised as soon as it happens, even while earlier runs are
        still going. TimeoutError if the values are not all in within ``timeout``.
        """
        _check_timeout(timeout)
        positions: dict[BaseFuture[R], list[int]] = {}
        for index, future in enumerate(self):
            positions.setdefault(future, []).append(index)
        values: list[Any] = [None] * len(self)
        deadline = _deadline(timeout)
        message = f"Timed out waiting for all futures to complete within {timeout} seconds"
        try:
            for future in as_completed(list(positions), timeout=timeout):
                value = future.result(raise_on_failure=raise_on_failure)
                for index in positions[future]:
                    values[index] = value
                if deadline is not None and time.monotonic() >= deadline:
                    raise _WaitTimeout(message)
        except _WaitTimeout as exc:  # not a TimeoutError that a task itself raised
            raise TimeoutError(message) from exc
        return values


class _WaitTimeout(TimeoutError):
    """Our own waiting ran out of time (as opposed to a task raising TimeoutError)."""


class DoneAndNotDoneFutures(NamedTuple, Generic[R]):
    """The outcome of ``wait``: which futures finished and which did not."""

    done: set[BaseFuture[R]]
    not_done: set[BaseFuture[R]]


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError(f"'timeout' must be a non-negative number, got {timeout}")


def wait(
    futures: Iterable[BaseFuture[R]], timeout: float | None = None
) -> DoneAndNotDoneFutures[R]:
    """Wait for futures to finish; returns (done, not_done) after ``timeout`` at most.

    Duplicates count once. Without a timeout every future has finished on return.
    """
    _check_timeout(timeout)
    unique = set(futures)
    deadline = _deadline(timeout)
    for future in unique:
        future.wait(_remaining(deadline))
    raise_if_suspension_requested()
    if timeout is None:  # each wait() returned, so each future is final
        return DoneAndNotDoneFutures(unique, set())
    done = {f for f in unique if f.done()}
    return DoneAndNotDoneFutures(done, unique - done)


def as_completed(
    futures: Iterable[BaseFuture[R]], timeout: float | None = None
) -> Iterator[BaseFuture[R]]:
    """Yield futures as they finish (each once); TimeoutError if some are not done in time."""
    _check_timeout(timeout)
    pending = list(dict.fromkeys(futures))
    finished: queue.SimpleQueue[BaseFuture[R]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = _deadline(timeout)
    for yielded in range(len(pending)):
        try:
            yield finished.get(timeout=_remaining(deadline))
        except queue.Empty:
            unfinished = len(pending) - yielded
            raise _WaitTimeout(f"{unfinished} (of {len(pending)}) futures unfinished") from None


def resolve_futures_to_states(expr: Any) -> Any:
    """``expr`` with every future replaced by its (final) state; a future list becomes a list."""

    def visit(item: Any) -> Any:
        if isinstance(item, BaseFuture):
            item.wait()
            return item.state
        return item

    return _plain_list(visit_collection(expr, visit))


def resolve_futures_to_results(expr: Any) -> Any:
    """``expr`` with every future replaced by its value (states are left as they are)."""

    def visit(item: Any) -> Any:
        if isinstance(item, BaseFuture):
            return item.result()
        return item

    return _plain_list(visit_collection(expr, visit))


def _plain_list(value: Any) -> Any:
    # A FutureList of states would offer wait()/result() that expect futures.
    return list(value) if isinstance(value, FutureList) else value


# Prefect's names, so that code ports by changing the import root only.
PrefectFuture = BaseFuture
PrefectTaskRunFuture = BaseFuture
PrefectFutureList = FutureList

__all__ = [
    "BaseFuture",
    "FutureList",
    "DoneAndNotDoneFutures",
    "wait",
    "as_completed",
    "resolve_futures_to_states",
    "resolve_futures_to_results",
    "PrefectFuture",
    "PrefectTaskRunFuture",
    "PrefectWrappedFuture",
    "PrefectConcurrentFuture",
    "PrefectDistributedFuture",
    "PrefectFlowRunFuture",
    "PrefectFutureList",
]
