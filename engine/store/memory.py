"""The in-memory run store: the embedded default, no infrastructure.

One lock serialises every write, which makes ``propose_state`` a true
compare-and-set among the threads of this process.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from engine.exceptions import ObjectAlreadyExists, ObjectNotFound
from engine.orchestration import (
    OrchestrationResult,
    SetStateStatus,
    entering_fields,
    evaluate_transition,
)
from engine.schemas import FlowRun, RunLog, TaskRun
from engine.states import State, now
from engine.store.base import RunStore


class MemoryRunStore(RunStore):
    """Runs and states held in this process's memory."""

    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[uuid.UUID, FlowRun | TaskRun] = {}
        self._flow_runs: list[uuid.UUID] = []
        self._task_runs_by_flow: dict[uuid.UUID | None, list[uuid.UUID]] = {}
        self._history: dict[uuid.UUID, list[State[Any]]] = {}
        self._logs: dict[uuid.UUID | None, list[RunLog]] = {}
        self._inputs: dict[tuple[uuid.UUID, str], str] = {}
        self._cache: dict[str, tuple[State[Any], datetime | None]] = {}

    def _insert(self, run: FlowRun | TaskRun) -> None:
        if run.id in self._runs:
            raise ObjectAlreadyExists(f"Run {run.id} already exists.")
        self._runs[run.id] = run.model_copy()
        self._history[run.id] = [run.state] if run.state else []

    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        with self._lock:
            self._insert(flow_run)
            self._flow_runs.append(flow_run.id)
        return flow_run

    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        run = self._read(flow_run_id)
        if not isinstance(run, FlowRun):
            raise ObjectNotFound(f"No flow run {flow_run_id}.")
        return run

    def list_flow_runs(self, limit: int = 50) -> list[FlowRun]:
        with self._lock:
            ids = self._flow_runs[-limit:][::-1]
            return [self._runs[i].model_copy() for i in ids]  # type: ignore[misc]

    def create_task_runs(self, task_runs: Iterable[TaskRun]) -> list[TaskRun]:
        created = list(task_runs)
        with self._lock:
            for run in created:
                self._insert(run)
                self._task_runs_by_flow.setdefault(run.flow_run_id, []).append(run.id)
        return created

    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        run = self._read(task_run_id)
        if not isinstance(run, TaskRun):
            raise ObjectNotFound(f"No task run {task_run_id}.")
        return run

    def read_task_runs(self, flow_run_id: uuid.UUID) -> list[TaskRun]:
        with self._lock:
            ids = list(self._task_runs_by_flow.get(flow_run_id, []))
            return [self._runs[i].model_copy() for i in ids]  # type: ignore[misc]

    def _read(self, run_id: uuid.UUID) -> FlowRun | TaskRun:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise ObjectNotFound(f"No run with id {run_id}.")
            return run.model_copy()

    def propose_state(
        self, run_id: uuid.UUID, state: State[Any], force: bool = False
    ) -> OrchestrationResult:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise ObjectNotFound(f"No run with id {run_id}.")
            status, reason, delay = evaluate_transition(run.state, state, force)
            if status != SetStateStatus.ACCEPT:
                return OrchestrationResult(
                    status=status, state=run.state, reason=reason, delay_seconds=delay
                )
            self._runs[run_id] = run.model_copy(update=entering_fields(run, state))
            self._history[run_id].append(state)
            return OrchestrationResult(status=status, state=state)

    def read_state_history(self, run_id: uuid.UUID) -> list[State[Any]]:
        with self._lock:
            if run_id not in self._history:
                raise ObjectNotFound(f"No run with id {run_id}.")
            return list(self._history[run_id])

    def write_logs(self, logs: Iterable[RunLog]) -> None:
        with self._lock:
            for log in logs:
                self._logs.setdefault(log.flow_run_id, []).append(log)

    def read_logs(self, flow_run_id: uuid.UUID, offset: int = 0) -> list[RunLog]:
        with self._lock:
            return list(self._logs.get(flow_run_id, [])[offset:])

    def set_run_input(self, flow_run_id: uuid.UUID, key: str, value: str) -> None:
        with self._lock:
            self._inputs[(flow_run_id, key)] = value

    def read_run_input(self, flow_run_id: uuid.UUID, key: str) -> str | None:
        with self._lock:
            return self._inputs.get((flow_run_id, key))

    def write_cache(self, key: str, state: State[Any], expires_at: datetime | None = None) -> None:
        with self._lock:
            self._cache[key] = (state, expires_at)

    def read_cache(self, key: str) -> State[Any] | None:
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            return None
        state, expires_at = found
        if expires_at is not None and expires_at <= now():
            return None
        return state
