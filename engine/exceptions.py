"""Celerity's exceptions: one root, grouped by layer.

Control-flow signals (pause, abort, timeout-by-signal) derive from
BaseException so that user code's ``except Exception`` cannot swallow them.
"""

from __future__ import annotations

from typing import Any


class CelerityException(Exception):
    """Root of every exception Celerity raises on purpose."""


# --- API misuse ----------------------------------------------------------------


class ParameterBindError(TypeError, CelerityException):
    """Arguments do not fit the function signature; the message names the parameter."""


class SignatureMismatchError(ParameterBindError):
    """Parameters name arguments the function does not take."""


class ParameterTypeError(CelerityException):
    """A flow parameter failed validation against its type hint."""


class MappingLengthMismatch(CelerityException):
    """Iterables passed to ``Task.map`` have different lengths."""


class MappingMissingIterable(CelerityException):
    """``Task.map`` was called without any iterable argument."""


class RunRecordArgumentError(TypeError, CelerityException):
    """A ``FlowRun`` or ``TaskRun`` record was passed as a task argument as it is.

    Its ``state`` would be taken for an upstream task run's; pass a field
    (``flow_run.id``) or wrap the record in ``opaque``.
    """


class MissingContextError(RuntimeError, CelerityException):
    """A run context was required but none is active."""


class ReservedArgumentError(TypeError, CelerityException):
    """A function uses an argument name that Celerity reserves."""


class InvalidNameError(ValueError, CelerityException):
    """A flow, task or run name contains a character names may not hold."""


class MissingFlowError(CelerityException):
    """An entrypoint names no flow (nothing by that name, or not a ``@flow``)."""


class UnspecifiedFlowError(CelerityException):
    """Several flows were found and none was named."""


class ScriptError(CelerityException):
    """A script raised while it was being loaded; ``user_exc`` is what it raised."""

    def __init__(self, user_exc: BaseException, path: str) -> None:
        super().__init__(f"Script at {str(path)!r} encountered an exception: {user_exc!r}")
        self.user_exc = user_exc
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.user_exc, self.path))


class ConfigurationError(CelerityException):
    """Settings are missing or inconsistent."""


# --- run outcomes -------------------------------------------------------------


class UnfinishedRun(CelerityException):
    """The result of a run that has not finished was requested."""


class FailedRun(CelerityException):
    """A run failed without an exception of its own to raise (e.g. failed children)."""


class CrashedRun(CelerityException):
    """A run crashed (its process or thread ended unexpectedly)."""


class CancelledRun(CelerityException):
    """A run was cancelled."""


class UpstreamTaskError(CelerityException):
    """An upstream run did not complete, so this one never ran."""


class PausedRun(UnfinishedRun):
    """The result of a paused run was requested."""

    def __init__(self, *args: Any, state: Any = None) -> None:
        super().__init__(*args)
        self.state = state


class FlowPauseTimeout(CelerityException):
    """A paused flow run was not resumed within its timeout."""


class NotPausedError(CelerityException):
    """``resume_flow_run`` was called for a run that is not paused."""


class MissingResult(CelerityException):
    """A state's result is not available (not persisted, or expired)."""


class TaskRunTimeoutError(TimeoutError, CelerityException):
    """A task run exceeded its ``timeout_seconds``."""


class FlowRunTimeoutError(TimeoutError, CelerityException):
    """A flow run exceeded its ``timeout_seconds``."""


# --- store and transport ------------------------------------------------------


class ObjectNotFound(LookupError, CelerityException):
    """The run store has no object with that id."""


class ObjectAlreadyExists(CelerityException):
    """The run store already holds an object with that id."""


class StoreUnavailable(ConnectionError, CelerityException):
    """The run store cannot be reached (Redis down, wrong URL, network timeout)."""


class FlowRunLost(ObjectNotFound):
    """The run store no longer has the flow run this process is running (Redis lost it)."""


class SerializationError(CelerityException):
    """A value could not be serialized to cross a process boundary."""

    def __init__(self, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.value = value

    def __reduce__(self) -> tuple[Any, ...]:
        # The value is what could not be pickled: it stays behind.
        return (type(self), (str(self),))


class EnvelopeRejected(CelerityException):
    """A task message failed signature verification or decoding."""


class SignatureVerificationError(CelerityException):
    """A signed payload (a message or a stored result) failed HMAC verification.

    It was tampered with, or signed with a key that is not in this process's
    ``CELERITY_SIGNING_KEY``; it was not unpickled.
    """


# --- control-flow signals -----------------------------------------------------


class CeleritySignal(BaseException):
    """Base for signals that must pass through ``except Exception``."""


class Pause(CeleritySignal):
    """Raised to pause the current flow run."""

    def __init__(self, message: str = "", state: Any = None) -> None:
        super().__init__(message)
        self.state = state


class Abort(CeleritySignal):
    """Raised when the orchestrator tells a run to stop."""


class TerminationSignal(CeleritySignal):
    """The process received a termination signal while a run was active."""

    def __init__(self, signal: int) -> None:
        super().__init__(f"Received signal {signal}")
        self.signal = signal


# The seed API's names, so that code ports by changing the import root only.
PrefectException = CelerityException
PrefectSignal = CeleritySignal
