"""A live view of a flow run's progress: its task runs by state, until the run is final.

``celerity runs watch`` and ``celerity flow submit --wait`` show it. The view
polls the run store (the CLI holds no event stream of its own); piped to a file
it prints only the final picture.

Example::

    state = watch_flow_run(get_store(), run_id, console())
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from engine.schemas import FlowRun, TaskRun
from engine.states import State, StateType
from engine.store.base import RunStore

POLL_SECONDS = 0.5
# Reading every task run of a very large run takes a while: wait at least this
# many times as long as the last read took before the next one.
POLL_LOAD_FACTOR = 4.0

STATE_STYLES = {
    StateType.COMPLETED: "green",
    StateType.FAILED: "red",
    StateType.CRASHED: "bold red",
    StateType.CANCELLED: "yellow",
    StateType.CANCELLING: "yellow",
    StateType.RUNNING: "cyan",
    StateType.PAUSED: "magenta",
    StateType.PENDING: "dim",
    StateType.SCHEDULED: "dim",
}

# Called after each poll with the flow run and the seconds since watching began.
OnPoll = Callable[[FlowRun, float], None]


class Snapshot:
    """A flow run and its task runs at one moment, counted by state name."""

    def __init__(self, flow_run: FlowRun, task_runs: list[TaskRun]) -> None:
        self.flow_run = flow_run
        self.counts: Counter[str] = Counter(_state_label(run.state) for run in task_runs)
        self.styles = {_state_label(run.state): _style(run.state) for run in task_runs}
        self.total = len(task_runs)
        self.final = sum(1 for run in task_runs if run.state is not None and run.state.is_final())

    @property
    def is_final(self) -> bool:
        """Whether the flow run itself is final."""
        state = self.flow_run.state
        return state is not None and state.is_final()

    def render(self, elapsed: float) -> Group:
        """The picture: the flow run's line, a bar of final task runs, and counts by state."""
        run = self.flow_run
        header = Text.assemble(
            ("Flow run ", ""),
            (run.name, "bold"),
            (f" ({run.id}) of {run.flow_name}: ", ""),
            (_state_label(run.state), _style(run.state) or "bold"),
            (f"  {elapsed:.0f}s", "dim"),
        )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(self.total, 1), completed=self.final, width=40),
            Text(f"{self.final}/{self.total} task runs final"),
        )
        return Group(header, bar, self._counts())

    def _counts(self) -> Text:
        if not self.counts:
            return Text("no task runs yet", style="dim")
        parts: list[Any] = []
        for label, count in sorted(self.counts.items()):
            parts.extend([(f"{label} {count}", self.styles.get(label) or ""), ("  ", "")])
        return Text.assemble(*parts[:-1])


def _state_label(state: State[Any] | None) -> str:
    return (state.name or state.type.value.capitalize()) if state is not None else "-"


def _style(state: State[Any] | None) -> str | None:
    return STATE_STYLES.get(state.type) if state is not None else None


def snapshot(store: RunStore, flow_run_id: uuid.UUID) -> Snapshot:
    """Read the flow run and its task runs once."""
    return Snapshot(store.read_flow_run(flow_run_id), store.read_task_runs(flow_run_id))


def watch_flow_run(
    store: RunStore,
    flow_run_id: uuid.UUID,
    console: Console,
    *,
    timeout: float | None = None,
    on_poll: OnPoll | None = None,
) -> State[Any]:
    """Show the flow run's progress live until it is final; return its final state.

    Raises TimeoutError after ``timeout`` seconds (None waits forever).
    ``on_poll`` sees each reading (e.g. to warn that nobody took the run).
    """
    started = time.monotonic()
    current = snapshot(store, flow_run_id)
    with Live(current.render(0), console=console, refresh_per_second=4) as live:
        while not current.is_final:
            elapsed = time.monotonic() - started
            if timeout is not None and elapsed >= timeout:
                raise TimeoutError(_timeout_text(current.flow_run, timeout))
            if on_poll is not None:
                on_poll(current.flow_run, elapsed)
            _pause(started, timeout)
            current = _timed_snapshot(store, flow_run_id)
            live.update(current.render(time.monotonic() - started))
    if not console.is_terminal:  # rich ends a non-interactive Live without a newline
        console.line()
    assert current.flow_run.state is not None  # final, hence set
    return current.flow_run.state


def _pause(started: float, timeout: float | None) -> None:
    left = POLL_SECONDS if timeout is None else started + timeout - time.monotonic()
    time.sleep(max(0.0, min(POLL_SECONDS, left)))


def _timed_snapshot(store: RunStore, flow_run_id: uuid.UUID) -> Snapshot:
    began = time.monotonic()
    current = snapshot(store, flow_run_id)
    spent = time.monotonic() - began
    if spent * POLL_LOAD_FACTOR > POLL_SECONDS:  # a big run: spare Redis and this CPU
        time.sleep(min(spent * POLL_LOAD_FACTOR - POLL_SECONDS, 5.0))
    return current


def _timeout_text(run: FlowRun, timeout: float) -> str:
    shown = run.state.name if run.state is not None else "no state"
    return f"Flow run {run.id} is not final after {timeout}s (it is {shown})."
