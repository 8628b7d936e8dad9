"""Reading a flow run's log lines as they are written, with the name of the run that wrote each.

The run store keeps a flow run's lines (its task runs' included) in one list
per flow run; a subflow's lines are in the subflow run's list. ``RunLogTail``
reads a flow run's list and, unless told not to, its subflows' lists too
(found through the parent task runs that stand for them, at any depth), from
where its last read stopped, and labels each line with the task run or flow
run that wrote it::

    tail = RunLogTail(store, flow_run_id)
    for line in tail.poll():  # again later for the lines written meanwhile
        print(line.text())

    09:21:46.736 | ERROR    | boom-aeb - Task run failed with exception: ...
    09:21:46.790 | INFO     | subflow mottled-locust - Beginning subflow run ...
    09:21:46.801 | INFO     | subflow mottled-locust > hello-31e - hello from task 2

A subflow's line is marked with ``subflow`` and the subflow run's name.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from engine.exceptions import ObjectNotFound
from engine.schemas import RunLog, TaskRun

# Reading a flow run's task runs again to find new subflows costs a read of
# every task run: not at every poll of a follower.
SUBFLOW_SCAN_SECONDS = 2.0
# Unknown writers are read one by one up to this many, else all at once.
_SINGLE_READS = 16


@dataclass(frozen=True)
class RunLogLine:
    """One stored log line and who wrote it."""

    log: RunLog
    flow_run_name: str
    task_run_name: str | None = None  # None for a flow run's own line
    subflow: bool = False  # the line is a subflow run's, read with its parent's

    @property
    def label(self) -> str:
        """Who wrote it: ``task-run``, ``flow-run``, ``subflow child-run > task-run``."""
        if not self.subflow:
            return self.task_run_name or self.flow_run_name
        writer = f" > {self.task_run_name}" if self.task_run_name else ""
        return f"subflow {self.flow_run_name}{writer}"

    def text(self) -> str:
        """``HH:MM:SS.mmm | LEVEL    | label - message`` in local time (a traceback follows)."""
        stamp = self.log.timestamp.astimezone().strftime("%H:%M:%S.%f")[:-3]
        level = logging.getLevelName(self.log.level)
        return f"{stamp} | {level:<8} | {self.label} - {self.log.message}"

    def to_json(self) -> dict[str, Any]:
        """The stored line's fields with the writer's names and the label (JSON-ready)."""
        return {
            **self.log.model_dump(mode="json"),
            "flow_run_name": self.flow_run_name,
            "task_run_name": self.task_run_name,
            "subflow": self.subflow,
            "label": self.label,
        }


class RunLogTail:
    """Reads a flow run's new log lines (and its subflows') at each ``poll``.

    ``subflows=False`` reads the flow run's own list only. Not thread-safe:
    one reader polls it.
    """

    def __init__(self, store: Any, flow_run_id: uuid.UUID, *, subflows: bool = True) -> None:
        self.store = store
        self.flow_run_id = flow_run_id
        self.subflows = subflows
        self._offsets: dict[uuid.UUID, int] = {flow_run_id: 0}
        self._flow_names: dict[uuid.UUID, str] = {}
        self._task_names: dict[uuid.UUID, str] = {}
        self._scanned_at = float("-inf")

    def poll(self) -> list[RunLogLine]:
        """The lines written since the last poll, oldest first."""
        if self.subflows and time.monotonic() - self._scanned_at >= SUBFLOW_SCAN_SECONDS:
            self._scan_subflows()
        logs: list[RunLog] = []
        for flow_run_id, offset in list(self._offsets.items()):
            new = self.store.read_logs(flow_run_id, offset)
            self._offsets[flow_run_id] = offset + len(new)
            logs.extend(new)
        logs.sort(key=lambda log: log.timestamp)
        self._learn_writers(logs)
        return [self._labelled(log) for log in logs]

    # --- names --------------------------------------------------------------------------

    def _labelled(self, log: RunLog) -> RunLogLine:
        flow_run_id = log.flow_run_id
        task_name = self._task_names.get(log.task_run_id) if log.task_run_id else None
        return RunLogLine(
            log=log,
            flow_run_name=self._flow_name(flow_run_id) if flow_run_id else "-",
            task_run_name=task_name or (str(log.task_run_id) if log.task_run_id else None),
            subflow=flow_run_id != self.flow_run_id,
        )

    def _flow_name(self, flow_run_id: uuid.UUID) -> str:
        if flow_run_id not in self._flow_names:
            try:
                self._flow_names[flow_run_id] = self.store.read_flow_run(flow_run_id).name
            except ObjectNotFound:  # expired: its id says enough
                self._flow_names[flow_run_id] = str(flow_run_id)
        return self._flow_names[flow_run_id]

    def _learn_writers(self, logs: list[RunLog]) -> None:
        """Read the names of the task runs that wrote ``logs`` and are not known yet."""
        unknown = {log.task_run_id: log.flow_run_id for log in logs if log.task_run_id}
        unknown = {k: v for k, v in unknown.items() if k not in self._task_names}
        if len(unknown) <= _SINGLE_READS:
            for task_run_id in unknown:
                self._remember(self._read_task_run(task_run_id))
            return
        for flow_run_id in {v for v in unknown.values() if v is not None}:
            for task_run in self.store.read_task_runs(flow_run_id):
                self._remember(task_run)

    def _read_task_run(self, task_run_id: uuid.UUID) -> TaskRun | None:
        try:
            run: TaskRun = self.store.read_task_run(task_run_id)
        except ObjectNotFound:
            return None
        return run

    def _remember(self, task_run: TaskRun | None) -> None:
        if task_run is not None:
            self._task_names[task_run.id] = task_run.name

    # --- subflows -----------------------------------------------------------------------

    def _scan_subflows(self) -> None:
        """Follow the subflow runs of every flow run read so far (new ones join the next read)."""
        self._scanned_at = time.monotonic()
        pending = list(self._offsets)
        while pending:
            for task_run in self.store.read_task_runs(pending.pop()):
                self._remember(task_run)
                child = _child_flow_run_id(task_run)
                if child is not None and child not in self._offsets:
                    self._offsets[child] = 0
                    pending.append(child)


def _child_flow_run_id(task_run: TaskRun) -> uuid.UUID | None:
    """The subflow run a parent task run stands for, if it stands for one."""
    state = task_run.state
    return state.state_details.child_flow_run_id if state is not None else None
