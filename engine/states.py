"""States: one ``State`` type, a ``StateType`` enum and named constructors.

"Retrying", "Cached", "TimedOut" and "NotReady" are names on a type, not new
types. A state carries its value in-process (``data``) and, once persisted, a
``result_ref`` that lets any process read the value back from result storage.
"""

from __future__ import annotations

import asyncio
import datetime
import sys
import uuid
from collections.abc import Iterable
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from engine.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    MissingResult,
    PausedRun,
    UnfinishedRun,
)
from engine.results import ResultRef, read_result

R = TypeVar("R")


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

    def result(
        self, raise_on_failure: bool = True, fetch: bool = True, retry_result_failure: bool = True
    ) -> R:
        """The run's value; raises the run's exception if it did not complete.

        With ``raise_on_failure=False`` a failed, crashed or cancelled state
        returns its exception instead. A paused run raises ``PausedRun``.
        """
        if self.type == StateType.PAUSED and raise_on_failure:
            raise PausedRun("Run is paused, its result is not available.", state=self)
        if not self.is_final():
            if self.name == "NotReady" and raise_on_failure:
                raise get_state_exception(self)
            if raise_on_failure:
                raise UnfinishedRun(
                    f"Run is in {self.type.value} state ({self.name}); its result is not available."
                )
            return None  # type: ignore[return-value]
        if not self.is_completed():
            if raise_on_failure:
                raise get_state_exception(self)
            return get_state_exception(self)  # type: ignore[return-value]
        if not self.has_data():
            raise MissingResult(f"State {self.name!r} has no result stored.")
        return self.data

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


# --- exception extraction --------------------------------------------------------------


def get_state_exception(state: State[Any]) -> BaseException:
    """The exception that best explains why ``state`` did not complete."""
    if state.name == "NotReady" and state.type == StateType.PENDING:
        from engine.exceptions import UpstreamTaskError

        return UpstreamTaskError(state.message or "Upstream run did not complete.")
    data = state.data if state.has_data() else None
    if isinstance(data, BaseException):
        return data
    if isinstance(data, str) and state.is_final():
        return _outcome_exception(state, data)
    if isinstance(data, State):
        return get_state_exception(data)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        for item in data:
            if isinstance(item, State) and (item.is_failed() or item.is_crashed()):
                return get_state_exception(item)
    return _outcome_exception(state)


def _outcome_exception(state: State[Any], message: str | None = None) -> BaseException:
    message = message or state.message or f"Run ended in {state.name!r}."
    if state.type == StateType.CRASHED:
        return CrashedRun(message)
    if state.type == StateType.CANCELLED:
        return CancelledRun(message)
    if state.is_final():
        return FailedRun(message)
    return UnfinishedRun(message)


def raise_state_exception(state: State[Any]) -> None:
    """Raise the state's exception if it is failed, crashed or cancelled."""
    if state.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
        raise get_state_exception(state)


# --- named constructors ------------------------------------------------------------------


def _named(type_: StateType, name: str | None, kwargs: dict[str, Any]) -> State[Any]:
    kwargs.setdefault("name", name)
    return State(type=type_, **kwargs)


def Scheduled(scheduled_time: datetime.datetime | None = None, **kwargs: Any) -> State[Any]:
    """A run waiting for ``scheduled_time``."""
    details = kwargs.pop("state_details", None) or StateDetails()
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
    details = kwargs.pop("state_details", None) or StateDetails()
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


# --- turning outcomes into states -----------------------------------------------------------


def is_state(value: Any) -> bool:
    return isinstance(value, State)


def is_state_iterable(value: Any) -> bool:
    """True for a non-empty list, tuple or set whose items are all states."""
    if isinstance(value, (list, tuple, set)) and value:
        return all(isinstance(item, State) for item in value)
    return False


def exception_to_failed_state(
    exc: BaseException | None = None, message: str | None = None, **_options: Any
) -> State[Any]:
    """A Failed state that carries ``exc`` (default: the exception being handled).

    The seed API's ``result_store`` / ``write_result`` options are accepted and
    ignored: the engine persists results itself.
    """
    if exc is None:
        exc = sys.exc_info()[1]
        if exc is None:
            raise ValueError("Exception was not passed and no active exception could be found.")
    text = message or f"{type(exc).__name__}: {exc}"
    return Failed(message=text, data=exc)


def exception_to_crashed_state(exc: BaseException) -> State[Any]:
    """A Crashed state that explains an interrupt or process exit."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        text = f"Execution was interrupted by {type(exc).__name__}."
    elif isinstance(exc, asyncio.CancelledError):
        text = "Execution was cancelled by the runtime environment."
    else:
        text = f"Execution was interrupted by an unexpected exception: {exc!r}"
    return Crashed(message=text, data=exc)


def return_value_to_state(retval: Any, *_args: Any, **_options: Any) -> State[Any]:
    """The final state for a run that returned ``retval``.

    - a state made by hand (no run ids, e.g. ``Completed(message=...)``) is used as-is;
    - a run's state, or a list / tuple / set of them, is combined by the aggregate
      rule (``combine_final_states``) and becomes the new state's data, so the
      caller gets the states back, as in the seed API;
    - anything else completes with the value.

    Callers resolve futures to states first (a bare future is tolerated). The
    seed API's ``result_store`` / ``key`` / ``write_result`` options are
    accepted and ignored.
    """
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
    return Completed(data=retval)


def _made_by_hand(state: State[Any]) -> bool:
    details = state.state_details
    return details.flow_run_id is None and details.task_run_id is None


def combine_final_states(states: list[State[Any]], data: Any) -> State[Any]:
    """One state for many, holding ``data``: Completed only if all completed.

    Otherwise Cancelled if any was cancelled, Paused if any paused, else Failed;
    the message counts the states that decided it ("1/2 states failed.").
    """
    total = len(states)
    if all(state.is_completed() for state in states):
        return Completed(message="All states completed.", data=data)
    cancelled = sum(1 for state in states if state.is_cancelled())
    if cancelled:
        message = f"{cancelled}/{total} states cancelled."
        return State(type=StateType.CANCELLED, message=message, data=data)
    paused = sum(1 for state in states if state.is_paused())
    if paused:
        return State(type=StateType.PAUSED, message=f"{paused}/{total} states paused.", data=data)
    failed = sum(1 for state in states if state.is_failed() or state.is_crashed())
    not_final = sum(1 for state in states if not state.is_final())
    if failed:
        message = f"{failed}/{total} states failed."
    elif not_final:
        message = f"{not_final}/{total} states are not final."
    else:
        message = "Given states: " + ", ".join(sorted({state.type.value for state in states}))
    return State(type=StateType.FAILED, message=message, data=data)
