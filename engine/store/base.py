"""The run store contract: every store (in-memory, Redis) implements this.

The store keeps flow runs, task runs, their state histories, run logs and flow
run inputs. ``propose_state`` is an atomic compare-and-set governed by
``engine.orchestration.evaluate_transition``; it is the only way a run's state
changes.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from engine.orchestration import OrchestrationResult
from engine.schemas import FlowRun, RunLog, TaskRun
from engine.states import State


class RunStore(ABC):
    """Where runs, states, logs and run inputs live."""

    url: str = ""

    # --- flow runs ---------------------------------------------------------------

    @abstractmethod
    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        """Store a new flow run; its ``state``, if set, starts its history."""

    @abstractmethod
    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        """The flow run with that id; raises ObjectNotFound."""

    @abstractmethod
    def list_flow_runs(self, limit: int = 50) -> list[FlowRun]:
        """The most recently created flow runs, newest first."""

    # --- task runs ---------------------------------------------------------------

    @abstractmethod
    def create_task_runs(self, task_runs: Iterable[TaskRun]) -> list[TaskRun]:
        """Store many new task runs at once (one round trip where possible)."""

    def create_task_run(self, task_run: TaskRun) -> TaskRun:
        """Store one new task run."""
        return self.create_task_runs([task_run])[0]

    @abstractmethod
    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        """The task run with that id; raises ObjectNotFound."""

    @abstractmethod
    def read_task_runs(self, flow_run_id: uuid.UUID) -> list[TaskRun]:
        """Every task run of a flow run, in creation order."""

    # --- states ------------------------------------------------------------------

    @abstractmethod
    def propose_state(
        self, run_id: uuid.UUID, state: State[Any], force: bool = False
    ) -> OrchestrationResult:
        """Atomically set a run's state if the transition rules allow it.

        Works for flow runs and task runs alike. ``force`` bypasses the rules
        (an explicit retry of a finished run). Raises ObjectNotFound.
        """

    @abstractmethod
    def read_state_history(self, run_id: uuid.UUID) -> list[State[Any]]:
        """Every accepted state of a run, oldest first."""

    # --- logs --------------------------------------------------------------------

    @abstractmethod
    def write_logs(self, logs: Iterable[RunLog]) -> None:
        """Append run log lines."""

    @abstractmethod
    def read_logs(self, flow_run_id: uuid.UUID, offset: int = 0) -> list[RunLog]:
        """A flow run's log lines (its task runs' included) from ``offset`` on."""

    # --- flow run input ------------------------------------------------------------

    @abstractmethod
    def set_run_input(self, flow_run_id: uuid.UUID, key: str, value: str) -> None:
        """Store a JSON document ``value`` under ``key`` for a flow run."""

    @abstractmethod
    def read_run_input(self, flow_run_id: uuid.UUID, key: str) -> str | None:
        """The JSON document under ``key``, or None."""

    # --- cache ------------------------------------------------------------------------

    @abstractmethod
    def write_cache(self, key: str, state: State[Any], expires_at: datetime | None = None) -> None:
        """Remember a completed state under a cache key, until ``expires_at`` if given."""

    @abstractmethod
    def read_cache(self, key: str) -> State[Any] | None:
        """The completed state cached under ``key``, or None if absent or expired."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections."""
