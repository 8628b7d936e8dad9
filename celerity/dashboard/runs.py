"""What the dashboard reads from the run store: recent runs, one run in full, its logs.

Every read goes to the store (Redis on a fleet) when asked: the page polls, so
what it shows is at most one poll old. The task runs of a *final* flow run do
not change any more, so they are kept per flow run state and not read again at
every poll or scrape of the recent window.
"""

from __future__ import annotations

import datetime
import functools
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from celerity.dashboard.serialize import (
    flow_run_json,
    log_json,
    state_json,
    task_run_json,
)
from celerity.run_filters import RunFilter
from engine.exceptions import ObjectNotFound
from engine.schemas import FlowRun, TaskRun
from engine.states import now
from engine.store.base import RunStore

# How many of the most recent flow runs the list filters and the metrics count.
WINDOW = 500
# A run's page shows its first task runs in full, and counts all of them by state: a map
# of 10,000 runs polled every second would otherwise cost the browser more than it shows.
MAX_TASK_RUNS = 2000
RESULT_CHARS = 2000
_CACHED_FLOW_RUNS = 2 * WINDOW


class RunNotFound(LookupError):
    """No flow run with that id in the store."""


@dataclass(frozen=True)
class RunsQuery:
    """Which flow runs the list shows: by state (a name or type, as ``runs ls --state``
    takes it) and flow name, at most ``limit`` of them."""

    state: str | None = None
    flow: str | None = None
    limit: int = 50

    def run_filter(self) -> RunFilter:
        """The ``runs ls`` filter for it; ValueError names an unknown state."""
        return RunFilter(states=(self.state,) if self.state else (), flow=self.flow)


class _Memo:
    """What was read for a final state, kept for the most recent ``size`` keys."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, read: Callable[[], Any]) -> Any:
        """The value kept under ``key``, else ``read()`` kept from now on."""
        with self._lock:
            if key in self._values:
                return self._values[key]
        value = read()  # outside the lock: a slow read must not hold up other pages
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value


class RunReader:
    """Reads runs for the dashboard from one store; safe to share between threads."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self._final_task_runs = _Memo(_CACHED_FLOW_RUNS)
        self._results = _Memo(_CACHED_FLOW_RUNS)

    # --- the runs list ------------------------------------------------------------------

    def recent(self, limit: int = WINDOW) -> list[FlowRun]:
        """The most recent flow runs, newest first."""
        return self.store.list_flow_runs(limit)

    def list_runs(self, query: RunsQuery) -> dict[str, Any]:
        """The filtered runs list, and every flow name and state seen in the window
        (what the page's filter menus offer). Filters look at the window only: a page
        polls this every few seconds, so it never reads the whole store."""
        run_filter = query.run_filter()
        window = self.recent()
        shown = [run for run in window if run_filter.keeps(run)][: query.limit]
        return {
            "runs": [flow_run_json(run) for run in shown],
            "flows": sorted({run.flow_name for run in window if run.flow_name}),
            "states": sorted({run.state.name or "" for run in window if run.state is not None}),
            "window": len(window),
        }

    # --- one run --------------------------------------------------------------------------

    def flow_run(self, run_id: uuid.UUID) -> FlowRun:
        """The flow run with that id; raises RunNotFound."""
        try:
            return self.store.read_flow_run(run_id)
        except ObjectNotFound:
            raise RunNotFound(f"No flow run with id {run_id}.") from None

    def task_runs(self, flow_run: FlowRun) -> list[TaskRun]:
        """A flow run's task runs, read once for good when the flow run is final."""
        state = flow_run.state
        if state is None or not state.is_final():
            return self.store.read_task_runs(flow_run.id)
        read = functools.partial(self.store.read_task_runs, flow_run.id)
        task_runs: list[TaskRun] = self._final_task_runs.get((flow_run.id, state.id), read)
        return task_runs

    def run_detail(self, run_id: uuid.UUID) -> dict[str, Any]:
        """A flow run in full: its fields, state history, task runs (with their upstreams)
        and result summary."""
        flow_run = self.flow_run(run_id)
        task_runs = self.task_runs(flow_run)
        shown = task_runs[:MAX_TASK_RUNS]
        known = {str(run.id) for run in shown}
        return {
            "flow_run": flow_run_json(flow_run),
            "history": [state_json(s) for s in self._history(run_id)],
            "task_runs": [task_run_json(run, known) for run in shown],
            "task_run_count": len(task_runs),
            "task_run_states": dict(Counter(_state_name(run) for run in task_runs)),
            "result": self.result_summary(flow_run),
            "now": now().isoformat(),
        }

    def _history(self, run_id: uuid.UUID) -> list[Any]:
        try:
            return self.store.read_state_history(run_id)
        except ObjectNotFound:  # expired between the two reads
            return []

    def logs(self, run_id: uuid.UUID, offset: int = 0) -> dict[str, Any]:
        """A flow run's log lines from ``offset`` on, and the offset to ask for next."""
        self.flow_run(run_id)
        lines = self.store.read_logs(run_id, offset)
        return {"logs": [log_json(line) for line in lines], "next_offset": offset + len(lines)}

    # --- result summary -------------------------------------------------------------------

    def result_summary(self, flow_run: FlowRun) -> dict[str, Any] | None:
        """The repr of a final flow run's result (or exception), cut to a readable length;
        None while it runs. Read once per final state."""
        state = flow_run.state
        if state is None or not state.is_final():
            return None
        summary: dict[str, Any] = self._results.get(state.id, functools.partial(_summarise, state))
        return summary

    # --- workers seen in runs -----------------------------------------------------------

    def workers_seen(self, limit: int = 50) -> dict[str, str]:
        """Each worker named by a task run of the recent flow runs, with the last time it
        started or ended one there (ISO 8601)."""
        seen: dict[str, datetime.datetime] = {}
        for flow_run in self.recent(limit):
            for run in self.task_runs(flow_run):
                stamp = run.end_time or run.start_time
                if run.worker and stamp is not None and stamp > seen.get(run.worker, _EPOCH):
                    seen[run.worker] = stamp
        return {name: stamp.isoformat() for name, stamp in seen.items()}


_EPOCH = datetime.datetime.min.replace(tzinfo=datetime.UTC)


def _state_name(run: TaskRun) -> str:
    return run.state.name or run.state.type.value if run.state is not None else "None"


def _summarise(state: Any) -> dict[str, Any]:
    try:
        value = state.result(raise_on_failure=False, _sync=True)
    except Exception as exc:  # not persisted, unreadable here, or its class not importable
        return {"available": False, "summary": f"unavailable: {type(exc).__name__}: {exc}"}
    text = repr(value)
    if len(text) > RESULT_CHARS:
        text = text[:RESULT_CHARS] + f"... ({len(text)} characters)"
    return {"available": True, "type": type(value).__name__, "summary": text}
