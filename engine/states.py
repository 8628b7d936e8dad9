"""States: one ``State`` type, a ``StateType`` enum and named constructors.

"Retrying", "Cached", "TimedOut" and "NotReady" are names on a type, not new
types. A state carries its value in-process (``data``) and, once persisted, a
``result_ref`` that lets any process read the value back from result storage.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from enum import Enum
from types import GeneratorType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from engine.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    MissingResult,
    PausedRun,
    TerminationSignal,
    UnfinishedRun,
)
from engine.results import (
    ResultRecord,
    ResultRecordMetadata,
    ResultRef,
    ResultStore,
    read_result,
)
from engine.utilities.annotations import BaseAnnotation
from engine.utilities.asyncutils import async_dispatch

R = TypeVar("R")

logger = logging.getLogger("celerity.states")


class _NotLoaded:
    """Marks a state whose value is not in this process (survives pickling as itself)."""

    def __reduce__(self) -> str:
        return "_NOT_LOADED"

    def __repr__(self) -> str:
        return "<not loaded>"


_NOT_LOADED: Any = _NotLoaded()


class StateType(str, Enum):
    """The kind of a state; the name is a label on top of it."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CANCELLING = "CANCELLING"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"


TERMINAL_STATES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


def now() -> datetime.datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.datetime.now(datetime.UTC)


class StateDetails(BaseModel):
    """Facts about a state beyond its type: run links, schedule, cache, pause."""

    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    child_flow_run_id: uuid.UUID | None = None
    scheduled_time: datetime.datetime | None = None
    cache_key: str | None = None
    cache_expiration: datetime.datetime | None = None
    retriable: bool | None = None
    pause_timeout: datetime.datetime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    run_input_keyset: dict[str, str] | None = None
    worker: str | None = None
    # A failed state's exception as Python prints it: the exception itself does
    # not keep its traceback through pickling, and `runs show` prints this.
    traceback: str | None = None


class State(BaseModel, Generic[R]):
    """The state of a flow run or task run at one moment.

    ``state.result()`` returns the value of a completed run and raises the
    exception of a failed one.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: StateType
    name: str | None = None
    timestamp: datetime.datetime = Field(default_factory=now)
    message: str | None = None
    state_details: StateDetails = Field(default_factory=StateDetails)
    result_ref: ResultRef | None = None
    # A factory, not a default: pydantic deep-copies a default for every State.
    _data: Any = PrivateAttr(default_factory=lambda: _NOT_LOADED)

    def __init__(self, **kwargs: Any) -> None:
        data = kwargs.pop("data", _NOT_LOADED)
        super().__init__(**kwargs)
        if data is not _NOT_LOADED:
            self._data = data
        if self.name is None:
            self.name = self.type.value.title()

    # --- value ----------------------------------------------------------------

    @property
    def data(self) -> Any:
        """The state's value: loaded from result storage on first access."""
        if self._data is _NOT_LOADED:
            if self.result_ref is None:
                return None
            self._data = read_result(self.result_ref)
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        self._data = value

    def has_loaded_data(self) -> bool:
        """True when the value is already in this process."""
        return self._data is not _NOT_LOADED

    def has_data(self) -> bool:
        """True when the value is in this process or can be loaded."""
        return self._data is not _NOT_LOADED or self.result_ref is not None

    def _needs_loading(self) -> bool:
        # True when reading the value means I/O: a stored result not read yet,
        # or a result record known only by its metadata.
        if self._data is _NOT_LOADED:
            return self.result_ref is not None
        return isinstance(self._data, ResultRecordMetadata)

    def _value(self) -> Any:
        """The value itself: a result record's value, read from its store if need be."""
        return _record_value(self.data) if self.has_data() else None

    async def aresult(
        self, raise_on_failure: bool = True, fetch: bool = True, retry_result_failure: bool = True
    ) -> R:
        """``result()`` for async code: reads result storage off the event loop."""
        if self._needs_loading():
            return await asyncio.to_thread(self._outcome, raise_on_failure)
        return self._outcome(raise_on_failure)

    @async_dispatch(aresult)
    def result(
        self, raise_on_failure: bool = True, fetch: bool = True, retry_result_failure: bool = True
    ) -> R:
        """The run's value; raises the run's exception if it did not complete.

        With ``raise_on_failure=False`` a failed, crashed or cancelled state
        returns its exception instead. A paused run raises ``PausedRun``.
        Called from async code it returns an awaitable (``await state.result()``),
        as ``aresult()`` does; ``_sync=True`` forces the value.
        """
        return self._outcome(raise_on_failure)

    def _outcome(self, raise_on_failure: bool) -> R:
        if self.type == StateType.PAUSED and raise_on_failure:
            raise PausedRun("Run is paused, its result is not available.", state=self)
        if not self.is_final():
            if self.name == "NotReady" and raise_on_failure:
                raise _exception_of(self)
            if raise_on_failure:
                raise UnfinishedRun(
                    f"Run is in {self.type.value} state ({self.name}); its result is not available."
                )
            return None  # type: ignore[return-value]
        if not self.is_completed():
            if raise_on_failure:
                raise _exception_of(self)
            return self._failure_value()
        if not self.has_data():
            raise MissingResult(f"State {self.name!r} has no result stored.")
        return self._value()

    def _failure_value(self) -> Any:
        # What raise_on_failure=False gives: the state's value as it is (its
        # exception, its message, the states of an aggregate), or an exception
        # made from the state's message when it has no value.
        value = self._value()
        return _exception_of(self) if value is None else value

    # --- predicates -------------------------------------------------------------

    def is_scheduled(self) -> bool:
        return self.type == StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type == StateType.PENDING

    def is_running(self) -> bool:
        return self.type == StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type == StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type == StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type == StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type == StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type == StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in TERMINAL_STATES

    # --- copies and display -----------------------------------------------------------

    def fresh_copy(self, **updates: Any) -> State[R]:
        """A copy with a new id and timestamp, keeping the in-process value."""
        copy = self.model_copy(update={"id": uuid.uuid4(), "timestamp": now(), **updates})
        copy._data = self._data
        return copy

    def without_value(self) -> State[R]:
        """A copy that carries only the reference, as sent to the store."""
        copy = self.model_copy()
        copy._data = _NOT_LOADED
        return copy

    def __repr__(self) -> str:
        """``Completed(message=None, type=COMPLETED, result=3)``: the value if it is loaded."""
        result = repr(self._data) if self.has_loaded_data() else repr(self.result_ref)
        return f"{self.name}(message={self.message!r}, type={self.type.value}, result={result})"

    def __str__(self) -> str:
        """``Completed()``, ``Failed('message')``, ``Cached(type=COMPLETED)``."""
        shown = [repr(self.message)] if self.message else []
        if self.type.value.lower() != (self.name or "").lower():
            shown.append(f"type={self.type.value}")
        return f"{self.name}({', '.join(shown)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return self.id == other.id and self.type == other.type and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.id)


# --- result records ------------------------------------------------------------------------


def _record_value(value: Any) -> Any:
    """``value``, or the value of the result record it is (ported code builds states so)."""
    if isinstance(value, ResultRecord):
        return value.result
    if isinstance(value, ResultRecordMetadata):
        return _read_record(value).result
    return value


def _read_record(metadata: ResultRecordMetadata) -> ResultRecord[Any]:
    if metadata.storage_key is None:
        raise ValueError("storage_key is required to read a result record from its metadata")
    return ResultStore(serializer=metadata.serializer).read(metadata.storage_key)


def _as_record(
    state: State[Any],
    result_store: Any,
    key: str | None = None,
    expiration: datetime.datetime | None = None,
    write_result: bool = False,
) -> State[Any]:
    """``state`` with its value as a record of ``result_store`` (written if asked).

    Only ported code passes a result store: the engine persists values itself.
    A failed write is logged and the run goes on, as in the seed API.
    """
    if result_store is None:
        return state
    value = state.data if state.has_data() else None
    if isinstance(value, (ResultRecord, ResultRecordMetadata)):
        return state
    record = result_store.create_result_record(value, key=key, expiration=expiration)
    if write_result:
        try:
            result_store.persist_result_record(record)
        except Exception as exc:  # a storage fails in its own ways; the state stands
            logger.warning("Failed to write result: %s; execution continues without it", exc)
    state.data = record
    return state


# --- exception extraction --------------------------------------------------------------

_WRAPPERS: dict[StateType, tuple[type[BaseException], str]] = {
    StateType.FAILED: (FailedRun, "Run failed."),
    StateType.CRASHED: (CrashedRun, "Run crashed."),
    StateType.CANCELLED: (CancelledRun, "Run cancelled."),
}


def _exception_of(state: State[Any]) -> BaseException:
    """The exception that best explains why ``state`` did not complete.

    - the state's value if it is an exception;
    - a ``FailedRun`` / ``CrashedRun`` / ``CancelledRun`` carrying the value if
      it is a string, or the state's message if there is no value;
    - the exception of a nested state, or of the first failed one of a list of states.

    A state that is not failed, crashed or cancelled raises ValueError (a
    ``NotReady`` one gives ``UpstreamTaskError``); a value that cannot explain
    a failure raises TypeError.
    """
    if state.name == "NotReady" and state.type == StateType.PENDING:
        from engine.exceptions import UpstreamTaskError

        return UpstreamTaskError(state.message or "Upstream run did not complete.")
    if state.type not in _WRAPPERS:
        raise ValueError(f"Expected failed or crashed state got {state!r}.")
    wrapper, default_message = _WRAPPERS[state.type]
    value = state._value()
    if value is None:
        return wrapper(state.message or default_message)
    if isinstance(value, BaseException):
        return value
    if isinstance(value, str):
        return wrapper(value)
    if isinstance(value, State):
        return _exception_of(value)
    if is_state_iterable(value):
        return _first_failure(value)
    raise TypeError(
        f"Unexpected result for failed state: {value!r} —— "
        f"{type(value).__name__} cannot be resolved into an exception"
    )


def _first_failure(states: Iterable[State[Any]]) -> BaseException:
    for inner in states:
        if inner.type in _WRAPPERS:
            return _exception_of(inner)
    raise ValueError("Failed state result was an iterable of states but none were failed.")


async def aget_state_exception(state: State[Any]) -> BaseException:
    """``get_state_exception`` for async code: reads result storage off the event loop."""
    if state._needs_loading():
        return await asyncio.to_thread(_exception_of, state)
    return _exception_of(state)


@async_dispatch(aget_state_exception)
def get_state_exception(state: State[Any]) -> BaseException:
    """The exception a failed, crashed or cancelled ``state`` stands for.

    Nested states and lists of states are searched for the first failure; a
    string value or a missing value becomes ``FailedRun`` (``CrashedRun``,
    ``CancelledRun``) with that message. Any other state raises ValueError.
    From async code it returns an awaitable.
    """
    return _exception_of(state)


async def araise_state_exception(state: State[Any]) -> None:
    """``raise_state_exception`` for async code."""
    if state.type in _WRAPPERS:
        raise await aget_state_exception(state)


@async_dispatch(araise_state_exception)
def raise_state_exception(state: State[Any]) -> None:
    """Raise the state's exception if it is failed, crashed or cancelled; else None.

    From async code it returns an awaitable: ``await raise_state_exception(state)``.
    """
    if state.type in _WRAPPERS:
        raise _exception_of(state)


# --- named constructors ------------------------------------------------------------------


def _named(type_: StateType, name: str | None, kwargs: dict[str, Any]) -> State[Any]:
    kwargs.setdefault("name", name)
    return State(type=type_, **kwargs)


def _details(kwargs: dict[str, Any]) -> StateDetails:
    """The ``state_details`` given (a model or a dict), as a model of its own."""
    given = kwargs.pop("state_details", None)
    return StateDetails.model_validate(given) if given is not None else StateDetails()


def Scheduled(scheduled_time: datetime.datetime | None = None, **kwargs: Any) -> State[Any]:
    """A run waiting for ``scheduled_time``."""
    details = _details(kwargs)
    details.scheduled_time = scheduled_time or now()
    return _named(StateType.SCHEDULED, "Scheduled", {**kwargs, "state_details": details})


def AwaitingRetry(scheduled_time: datetime.datetime | None = None, **kwargs: Any) -> State[Any]:
    """A run that failed and waits for its next attempt."""
    kwargs.setdefault("name", "AwaitingRetry")
    return Scheduled(scheduled_time, **kwargs)


def Late(scheduled_time: datetime.datetime | None = None, **kwargs: Any) -> State[Any]:
    """A scheduled run that did not start on time."""
    kwargs.setdefault("name", "Late")
    return Scheduled(scheduled_time, **kwargs)


def AwaitingConcurrencySlot(
    scheduled_time: datetime.datetime | None = None, **kwargs: Any
) -> State[Any]:
    """A run waiting for a concurrency slot."""
    kwargs.setdefault("name", "AwaitingConcurrencySlot")
    return Scheduled(scheduled_time, **kwargs)


def Pending(**kwargs: Any) -> State[Any]:
    """A run created but not started."""
    return _named(StateType.PENDING, "Pending", kwargs)


def Submitting(**kwargs: Any) -> State[Any]:
    """A run whose infrastructure is being requested (a kind of Pending)."""
    return _named(StateType.PENDING, "Submitting", kwargs)


def InfrastructurePending(**kwargs: Any) -> State[Any]:
    """A run whose infrastructure is starting (a kind of Pending)."""
    return _named(StateType.PENDING, "InfrastructurePending", kwargs)


def NotReady(**kwargs: Any) -> State[Any]:
    """A run that never started because an upstream did not complete."""
    return _named(StateType.PENDING, "NotReady", kwargs)


def Running(**kwargs: Any) -> State[Any]:
    """A run executing now."""
    return _named(StateType.RUNNING, "Running", kwargs)


def Retrying(**kwargs: Any) -> State[Any]:
    """A run executing a further attempt."""
    return _named(StateType.RUNNING, "Retrying", kwargs)


def Completed(**kwargs: Any) -> State[Any]:
    """A run that finished successfully."""
    return _named(StateType.COMPLETED, "Completed", kwargs)


def Cached(**kwargs: Any) -> State[Any]:
    """A run completed by reusing a cached result."""
    return _named(StateType.COMPLETED, "Cached", kwargs)


def Failed(**kwargs: Any) -> State[Any]:
    """A run that raised or returned a failure."""
    return _named(StateType.FAILED, "Failed", kwargs)


def TimedOut(**kwargs: Any) -> State[Any]:
    """A run that exceeded its timeout."""
    return _named(StateType.FAILED, "TimedOut", kwargs)


def Crashed(**kwargs: Any) -> State[Any]:
    """A run whose process or thread was interrupted."""
    return _named(StateType.CRASHED, "Crashed", kwargs)


def Cancelled(**kwargs: Any) -> State[Any]:
    """A run that was cancelled."""
    return _named(StateType.CANCELLED, "Cancelled", kwargs)


def Cancelling(**kwargs: Any) -> State[Any]:
    """A run asked to cancel, not yet stopped."""
    return _named(StateType.CANCELLING, "Cancelling", kwargs)


def Paused(
    timeout_seconds: float | None = None,
    pause_expiration_time: datetime.datetime | None = None,
    reschedule: bool = False,
    pause_key: str | None = None,
    **kwargs: Any,
) -> State[Any]:
    """A run waiting to be resumed."""
    details = _details(kwargs)
    if pause_expiration_time is None and timeout_seconds is not None:
        pause_expiration_time = now() + datetime.timedelta(seconds=timeout_seconds)
    details.pause_timeout = pause_expiration_time
    details.pause_reschedule = reschedule
    details.pause_key = pause_key
    return _named(StateType.PAUSED, "Paused", {**kwargs, "state_details": details})


def Suspended(timeout_seconds: float | None = None, **kwargs: Any) -> State[Any]:
    """A paused run whose process exits; it is rescheduled on resume."""
    kwargs.setdefault("name", "Suspended")
    return Paused(timeout_seconds=timeout_seconds, reschedule=True, **kwargs)


# --- groups of states -----------------------------------------------------------------------


class StateGroup:
    """Counts over a list of states, for deciding and describing an aggregate state.

    Example: ``StateGroup([Completed(), Failed()]).any_failed()`` is True.
    """

    def __init__(self, states: Iterable[State[Any]]) -> None:
        self.states: list[State[Any]] = list(states)
        self.type_counts: Counter[StateType] = Counter(state.type for state in self.states)
        self.total_count = len(self.states)
        self.final_count = sum(1 for state in self.states if state.is_final())
        self.not_final_count = self.total_count - self.final_count
        self.cancelled_count = self.type_counts[StateType.CANCELLED]
        self.paused_count = self.type_counts[StateType.PAUSED]

    @property
    def fail_count(self) -> int:
        """Failed plus crashed states."""
        return self.type_counts[StateType.FAILED] + self.type_counts[StateType.CRASHED]

    def all_completed(self) -> bool:
        return self.type_counts[StateType.COMPLETED] == self.total_count

    def all_final(self) -> bool:
        return self.final_count == self.total_count

    def any_cancelled(self) -> bool:
        return self.cancelled_count > 0

    def any_failed(self) -> bool:
        return self.fail_count > 0

    def any_paused(self) -> bool:
        return self.paused_count > 0

    def counts_message(self) -> str:
        """``total=3, not_final=1, 'FAILED'=1, 'RUNNING'=1, ...``"""
        parts = [f"total={self.total_count}"]
        if self.not_final_count:
            parts.append(f"not_final={self.not_final_count}")
        parts.extend(f"{kind.value!r}={count}" for kind, count in self.type_counts.items() if count)
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"StateGroup<{self.counts_message()}>"


def combine_final_states(states: list[State[Any]], data: Any) -> State[Any]:
    """One state for many, holding ``data``: Completed only if all completed.

    Otherwise Cancelled if any was cancelled, Paused if any paused, else Failed;
    the message counts the states that decided it ("1/2 states failed.").
    """
    group = StateGroup(states)
    total = group.total_count
    if group.all_completed():
        return Completed(message="All states completed.", data=data)
    if group.any_cancelled():
        message = f"{group.cancelled_count}/{total} states cancelled."
        return State(type=StateType.CANCELLED, message=message, data=data)
    if group.any_paused():
        message = f"{group.paused_count}/{total} states paused."
        return State(type=StateType.PAUSED, message=message, data=data)
    if group.any_failed():
        message = f"{group.fail_count}/{total} states failed."
    elif not group.all_final():
        message = f"{group.not_final_count}/{total} states are not final."
    else:
        message = "Given states: " + group.counts_message()
    return State(type=StateType.FAILED, message=message, data=data)


# --- turning outcomes into states -----------------------------------------------------------


def is_state(value: Any) -> bool:
    """True for a ``State``."""
    return isinstance(value, State)


def is_state_iterable(value: Any) -> bool:
    """True for a non-empty list, tuple or set whose items are all states.

    Other containers (dicts, generators, annotations such as ``quote``) are not
    state iterables even when they hold states.
    """
    if isinstance(value, (list, tuple, set)) and value and not isinstance(value, BaseAnnotation):
        return all(isinstance(item, State) for item in value)
    return False


def format_exception(exc: BaseException) -> str:
    """``ValueError: message``: how a state's message names an exception."""
    return f"{type(exc).__name__}: {exc}"


def exception_to_failed_state_sync(
    exc: BaseException | None = None,
    result_store: Any = None,
    write_result: bool = False,
    **kwargs: Any,
) -> State[Any]:
    """A Failed state carrying ``exc`` (default: the exception being handled).

    The message is ``ValueError: ...``, after ``message=`` if one is given.
    The state is marked not retriable. Given a ``result_store`` (ported code;
    the engine persists values itself) the exception becomes a record of it,
    written when ``write_result`` is set. A message passed in
    ``result_store``'s place (the seed API's positional form) is used as the
    whole message.
    """
    if exc is None:
        exc = sys.exc_info()[1]
        if exc is None:
            raise ValueError("Exception was not passed and no active exception could be found.")
    if isinstance(result_store, str):
        text, result_store = result_store, None
    else:
        prefix = kwargs.pop("message", None) or ""
        text = (prefix.rstrip() + " " if prefix else "") + format_exception(exc)
    state = Failed(message=text, data=exc, **kwargs)
    state.state_details.retriable = False
    state.state_details.traceback = _traceback_text(exc)
    return _as_record(state, result_store, write_result=write_result)


def _traceback_text(exc: BaseException) -> str:
    """``exc`` as Python prints it, without the engine's frames (as run logs show it)."""
    from engine.logging.formatters import format_traceback

    return format_traceback(exc)


def exception_to_crashed_state_sync(exc: BaseException, result_store: Any = None) -> State[Any]:
    """A Crashed state that explains an interrupt, a signal or an exit.

    Given a ``result_store``, the exception becomes a record of it (not written).
    """
    return _as_record(Crashed(message=_crash_message(exc), data=exc), result_store)


def _crash_message(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "Execution was cancelled by the runtime environment."
    if isinstance(exc, KeyboardInterrupt):
        return "Execution was aborted by an interrupt signal."
    if isinstance(exc, TerminationSignal):
        return "Execution was aborted by a termination signal."
    if isinstance(exc, SystemExit):
        return "Execution was aborted by Python system exit call."
    return f"Execution was interrupted by an unexpected exception: {format_exception(exc)}"


def return_value_to_state_sync(
    retval: Any,
    result_store: Any = None,
    key: str | None = None,
    expiration: datetime.datetime | None = None,
    write_result: bool = False,
) -> State[Any]:
    """The final state for a run that returned ``retval``.

    - a state made by hand (no run ids, e.g. ``Completed(message=...)``) is used as-is;
    - a run's state, or a list / tuple / set of them, is combined by the aggregate
      rule (``combine_final_states``) and becomes the new state's data, so the
      caller gets the states back;
    - a generator is drained into a list (a generator cannot be stored);
    - anything else completes with the value.

    Callers resolve futures to states first (a bare future is tolerated).
    Given a ``result_store`` (ported code; the engine persists values itself),
    the state's value becomes a record of that store under ``key``, written
    when ``write_result`` is set.
    """
    state = _state_for_return(retval)
    return _as_record(state, result_store, key, expiration, write_result)


def _state_for_return(retval: Any) -> State[Any]:
    from engine.futures import BaseFuture

    if isinstance(retval, BaseFuture):
        retval = retval.state
    if isinstance(retval, State) and _made_by_hand(retval):
        if not retval.has_data():
            retval.data = None  # e.g. Completed(message=...) has a None result
        return retval
    if isinstance(retval, State):
        return combine_final_states([retval], retval)
    if is_state_iterable(retval):
        return combine_final_states(list(retval), retval)
    if isinstance(retval, GeneratorType):
        retval = list(retval)
    return Completed(data=retval)


def _made_by_hand(state: State[Any]) -> bool:
    details = state.state_details
    return details.flow_run_id is None and details.task_run_id is None


async def _exception_to_failed_state_async(
    exc: BaseException | None = None,
    result_store: Any = None,
    write_result: bool = False,
    **kwargs: Any,
) -> State[Any]:
    return exception_to_failed_state_sync(exc, result_store, write_result, **kwargs)


async def _exception_to_crashed_state_async(
    exc: BaseException, result_store: Any = None
) -> State[Any]:
    return exception_to_crashed_state_sync(exc, result_store)


async def _return_value_to_state_async(
    retval: Any,
    result_store: Any = None,
    key: str | None = None,
    expiration: datetime.datetime | None = None,
    write_result: bool = False,
) -> State[Any]:
    return return_value_to_state_sync(retval, result_store, key, expiration, write_result)


# Ported code awaits these in async code, as the seed API's are coroutines
# there; sync code (and the engine, through the ``_sync`` names) gets the state.
exception_to_failed_state = async_dispatch(_exception_to_failed_state_async)(
    exception_to_failed_state_sync
)
exception_to_crashed_state = async_dispatch(_exception_to_crashed_state_async)(
    exception_to_crashed_state_sync
)
return_value_to_state = async_dispatch(_return_value_to_state_async)(return_value_to_state_sync)
