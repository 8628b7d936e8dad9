"""Futures for task runs: returned at once by ``submit`` / ``map``.

A future is completed with the run's final state by whichever runner ran it
(a thread of this process, or the coordinator's listener for Celery workers).
Until then ``future.state`` reads the current state from the run store.

A flow may hold tens of thousands of futures, so each one is small: slots, no
lock or event of its own (one process-wide condition wakes waiters), and a
final state that may stay as the JSON it arrived in until someone looks at it.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

from engine.states import Pending, State
from engine.utilities.collections import visit_collection

R = TypeVar("R")

# One condition for every future: completing a future notifies all waiters,
# which then check their own future. Few threads wait at once, and this saves
# a lock and an event per future.
_completed = threading.Condition(threading.Lock())
# How a completed state's JSON says its type (pydantic writes no spaces).
_COMPLETED_MARK = b'"type":"COMPLETED"'


class BaseFuture(Generic[R]):
    """A task run in progress; completed once with its final state."""

    __slots__ = ("task_run_id", "_final_state", "_final_json", "_callbacks", "__weakref__")

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
        for callback in callbacks:
            _call_quietly(callback, self)

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
        if self.done():
            return
        deadline = None if timeout is None else time.monotonic() + timeout
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
        return self.state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Callable[[BaseFuture[R]], None]) -> None:
        """Call ``fn(future)`` once the run is final (at once if it already is)."""
        with _completed:
            if not self.done():
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        _call_quietly(fn, self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_run_id={self.task_run_id})"

    def __hash__(self) -> int:
        return hash(self.task_run_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseFuture) and other.task_run_id == self.task_run_id


def _call_quietly(fn: Callable[[Any], None], future: BaseFuture[Any]) -> None:
    try:
        fn(future)
    except Exception:  # a user's callback must not break the runner
        from engine.logging import get_logger

        get_logger("futures").exception("Done callback %r raised an error.", fn)


class FutureList(list[BaseFuture[R]]):
    """The futures returned by ``Task.map``, with ``wait`` and ``result`` for all."""

    def wait(self, timeout: float | None = None) -> None:
        """Block until every run is final or ``timeout`` passes."""
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Every run's value in order; raises the first failure."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return [
            future.result(timeout=_remaining(deadline), raise_on_failure=raise_on_failure)
            for future in self
        ]


class DoneAndNotDoneFutures(NamedTuple, Generic[R]):
    """The outcome of ``wait``: which futures finished and which did not."""

    done: set[BaseFuture[R]]
    not_done: set[BaseFuture[R]]


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def wait(
    futures: Iterable[BaseFuture[R]], timeout: float | None = None
) -> DoneAndNotDoneFutures[R]:
    """Wait for futures to finish; returns (done, not_done) after ``timeout`` at most."""
    futures = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    for future in futures:
        future.wait(_remaining(deadline))
    done = {f for f in futures if f.done()}
    return DoneAndNotDoneFutures(done, set(futures) - done)


def as_completed(
    futures: Iterable[BaseFuture[R]], timeout: float | None = None
) -> Iterator[BaseFuture[R]]:
    """Yield futures as they finish; TimeoutError if some are not done in time."""
    pending = list(dict.fromkeys(futures))
    finished: queue.SimpleQueue[BaseFuture[R]] = queue.SimpleQueue()
    for future in pending:
        future.add_done_callback(finished.put)
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in range(len(pending)):
        try:
            yield finished.get(timeout=_remaining(deadline))
        except queue.Empty:
            raise TimeoutError(f"Futures did not all finish within {timeout}s.") from None


def resolve_futures_to_states(expr: Any) -> Any:
    """``expr`` with every future replaced by its (final) state."""

    def visit(item: Any) -> Any:
        if isinstance(item, BaseFuture):
            item.wait()
            return item.state
        return item

    return visit_collection(expr, visit)


def resolve_futures_to_results(expr: Any) -> Any:
    """``expr`` with every future replaced by its value (states are left as they are)."""

    def visit(item: Any) -> Any:
        if isinstance(item, BaseFuture):
            return item.result()
        return item

    return visit_collection(expr, visit)


# The seed API's names, so that code ports by changing the import root only.
PrefectFuture = BaseFuture
PrefectFutureList = FutureList
PrefectConcurrentFuture = BaseFuture

__all__ = [
    "BaseFuture",
    "FutureList",
    "DoneAndNotDoneFutures",
    "wait",
    "as_completed",
    "resolve_futures_to_states",
    "resolve_futures_to_results",
    "PrefectFuture",
    "PrefectFutureList",
]
