"""The rules for state transitions, shared by every run store.

A proposal is a compare-and-set: the store reads the current state, asks
``evaluate_transition`` and writes only if the answer is ACCEPT, all as one
atomic step. These rules are what make duplicate deliveries harmless.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel

from engine.states import State, StateType, now


class SetStateStatus(str, Enum):
    """The store's answer to a proposed state."""

    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    WAIT = "WAIT"
    ABORT = "ABORT"


class OrchestrationResult(BaseModel):
    """A proposal's outcome and the state that is current afterwards."""

    status: SetStateStatus
    # The bare class: State[Any] would make pydantic copy the state (see RunBase.state).
    state: State | None = None
    reason: str | None = None
    delay_seconds: float | None = None


def evaluate_transition(
    current: State[Any] | None, proposed: State[Any], force: bool = False
) -> tuple[SetStateStatus, str | None, float | None]:
    """Decide a proposal: (status, reason, seconds to wait)."""
    if force or current is None:
        return SetStateStatus.ACCEPT, None, None
    if current.is_final():
        return SetStateStatus.REJECT, f"Run is already final ({current.name}).", None
    if proposed.type == StateType.RUNNING:
        return _evaluate_running(current, proposed)
    return SetStateStatus.ACCEPT, None, None


def _evaluate_running(
    current: State[Any], proposed: State[Any]
) -> tuple[SetStateStatus, str | None, float | None]:
    # Only the attempt that holds RUNNING may move on to a further attempt
    # ("Retrying"); a second "Running" is a duplicate delivery or a race.
    if current.type == StateType.RUNNING and proposed.name != "Retrying":
        return SetStateStatus.REJECT, "Run is already running.", None
    if current.type == StateType.CANCELLING:
        return SetStateStatus.ABORT, "Run is being cancelled.", None
    scheduled = current.state_details.scheduled_time
    if current.type == StateType.SCHEDULED and scheduled is not None:
        delay = (scheduled - now()).total_seconds()
        if delay > 0:
            return SetStateStatus.WAIT, "Run is scheduled for later.", delay
    return SetStateStatus.ACCEPT, None, None


def entering_fields(run: Any, proposed: State[Any]) -> dict[str, Any]:
    """The run fields that change when ``proposed`` is accepted."""
    updates: dict[str, Any] = {"state": proposed}
    if proposed.type == StateType.RUNNING:
        updates["run_count"] = run.run_count + 1
        if run.start_time is None:
            updates["start_time"] = proposed.timestamp
        if proposed.state_details.worker:
            updates["worker"] = proposed.state_details.worker
    if proposed.is_final():
        updates["end_time"] = proposed.timestamp
        start = updates.get("start_time", run.start_time)
        if start is not None:
            updates["total_run_time"] = (proposed.timestamp - start).total_seconds()
    return updates
