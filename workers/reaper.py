"""The coordinator's reaper: recovers dispatched task runs however their message was lost.

Every lease period it checks the runs this runner has dispatched and not yet
seen finish, in one round trip (each run with its lease):

- **Orphaned**: Running (or waiting to retry on a worker) with no lease: its
  worker died. It gets a new attempt and is sent again while retries remain,
  else it ends Crashed.
- **Never started**: still Pending (or AwaitingRetry with no worker) with no
  lease, sent at least ``RESEND_AFTER_LEASES`` lease periods ago, and no longer
  waiting in its queue: it was lost with a killed worker, dropped as
  undecodable, or never reached Redis. It is sent again from the packed
  parameters kept here; the compare-and-set keeps it to one execution per
  attempt. "No longer waiting in its queue" means that a worker has started a
  message sent *after* it on that queue (queues are FIFO, and workers advance
  the queue's progress mark when they claim a message), or that the queue is
  empty. A run sent ``MAX_RESENDS`` times without any worker starting it ends
  Failed with the reason (a worker with another signing key drops every copy).
- **Gone**: its record left the store (Redis restarted without persistence):
  its future ends Crashed here. If the flow run's own record is gone, every
  future of the runner ends Crashed, so the flow process finishes with a clear
  error instead of waiting forever; the same happens once the store has been
  unreachable for ``OUTAGE_LEASES`` lease periods.

Recovery bounds (L = ``CELERITY_LEASE_SECONDS``): an orphan is resent within
2 L of its worker's death; a lost message within about 3 L of being sent once
its queue has moved past it; a lost store ends the flow within 5 L.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from engine.schemas import TaskRun
from engine.states import Failed, State
from engine.store.base import SharedRunStore
from engine.store.redis import masked_url
from workers.metrics import LOST_MESSAGE, ORPHANED_TASK_RUN, count_recovery

logger = logging.getLogger("celerity.reaper")

# Lease periods of a store outage after which dispatched runs are given up.
OUTAGE_LEASES = 4
# Lease periods after sending before an unclaimed, unstarted run may be resent.
RESEND_AFTER_LEASES = 2
# Sends of a run that no worker ever started before it ends Failed.
MAX_RESENDS = 4


@dataclass(slots=True)
class InFlight:
    """What the runner keeps per dispatched run until it is final: enough to resend it."""

    key: Any  # (runner id, task id, queue, task): the message group
    parameters: str  # packed
    future: Any
    sent_at: float | None = None  # None while it waits for upstreams (deferred)
    sends: int = 0

    @property
    def queue(self) -> str | None:
        return self.key[2]  # type: ignore[no-any-return]

    @property
    def task(self) -> Any:
        return self.key[3]


class Dispatcher(Protocol):
    """What the reaper needs from the runner whose runs it watches."""

    flow_run_id: uuid.UUID | None

    def inflight(self) -> dict[uuid.UUID, InFlight]: ...

    def resend(self, task_run_id: uuid.UUID) -> None: ...

    def lose(self, task_run_id: uuid.UUID, reason: str) -> None: ...

    def lose_all(self, reason: str) -> None: ...

    def queue_is_empty(self, queue: str | None) -> bool: ...


class Reaper:
    """A daemon thread that recovers the lost runs of one task runner."""

    def __init__(self, store: SharedRunStore, runner: Dispatcher) -> None:
        self.store = store
        self.runner = runner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="celerity-reaper", daemon=True)
        self._gave_up = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self.store.lease_seconds):
            try:
                self.reap_once()
                failing_since = None
            except Exception as exc:  # keep reaping after a Redis blip
                logger.warning("Reaper pass failed: %s", exc)
                failing_since = failing_since or time.monotonic()
                down = time.monotonic() - failing_since
                if down >= OUTAGE_LEASES * self.store.lease_seconds:
                    self._give_up(f"The run store has been unreachable for {down:.0f}s ({exc}).")

    def _give_up(self, reason: str) -> None:
        if not self._gave_up:
            logger.error("%s Giving up on the flow run's task runs.", reason)
        self._gave_up = True
        self.runner.lose_all(f"{reason} The outcome of this task run is unknown.")

    def reap_once(self) -> int:
        """Check every in-flight run once; returns how many were resent, failed or lost."""
        records = self.runner.inflight()
        run_ids = list(records)
        flow_run_id = self.runner.flow_run_id
        checked = run_ids + ([flow_run_id] if flow_run_id is not None else [])
        found = self.store.runs_with_leases(checked)
        if flow_run_id is not None and found.pop()[0] is None:
            self._give_up(
                f"Flow run {flow_run_id} is no longer in the run store at "
                f"{masked_url(self.store.url)} (was Redis restarted without persistence?)."
            )
            return len(run_ids)
        progress = _Progress(self.store, self.runner)
        acted = 0
        for run_id, (run, holder) in zip(run_ids, found, strict=True):
            acted += self._check(run_id, run, holder, records[run_id], progress)
        return acted

    def _check(
        self, run_id: uuid.UUID, run: Any, holder: str | None, record: InFlight, progress: _Progress
    ) -> int:
        if run is None:
            self.runner.lose(
                run_id,
                f"Task run {run_id} is no longer in the run store at {masked_url(self.store.url)} "
                "(was Redis restarted without persistence, or its keys deleted?).",
            )
            return 1
        if holder is not None or not isinstance(run, TaskRun) or run.state is None:
            return 0
        if _orphaned(run.state):
            self._recover_orphan(run, record)
            return 1
        if _unstarted(run.state) and progress.lost(record):
            self._resend_unstarted(run, record)
            return 1
        return 0

    def _recover_orphan(self, run: TaskRun, record: InFlight) -> None:
        from workers.execution import take_over

        if take_over(run, run.state, record.task.retries):  # type: ignore[arg-type]
            count_recovery(self.store, ORPHANED_TASK_RUN)
            self.runner.resend(run.id)

    def _resend_unstarted(self, run: TaskRun, record: InFlight) -> None:
        from engine.proposals import propose_task_run_state

        if record.sends < MAX_RESENDS:
            logger.warning(
                "Task run %s was sent %.0fs ago and no worker has started it; sending it again.",
                run.id,
                time.time() - (record.sent_at or 0),
            )
            count_recovery(self.store, LOST_MESSAGE)
            self.runner.resend(run.id)
            return
        reason = (
            f"Task run {run.name!r} was sent {record.sends} times and no worker started it. "
            f"Check that a worker consumes queue {record.queue!r} and that every worker, "
            "coordinator and submitting process shares CELERITY_SIGNING_KEY (a worker drops "
            "messages signed with another key)."
        )
        logger.error(reason)
        propose_task_run_state(run, Failed(message=reason))


def _orphaned(state: State[Any]) -> bool:
    # A retry wait counts only while a worker owns it (it keeps the lease); one
    # set by a takeover is simply waiting for a worker.
    owned_wait = state.name == "AwaitingRetry" and bool(state.state_details.worker)
    return state.is_running() or owned_wait


def _unstarted(state: State[Any]) -> bool:
    waiting = state.name == "AwaitingRetry" and not state.state_details.worker
    return (state.is_pending() and state.name != "NotReady") or waiting


class _Progress:
    """Whether a sent run's message can still be waiting in its queue (one look per queue)."""

    def __init__(self, store: SharedRunStore, runner: Dispatcher) -> None:
        self.store = store
        self.runner = runner
        self.now = time.time()
        self._marks: dict[str | None, float] = {}
        self._empty: dict[str | None, bool] = {}

    def lost(self, record: InFlight) -> bool:
        sent = record.sent_at
        if sent is None or self.now - sent < RESEND_AFTER_LEASES * self.store.lease_seconds:
            return False
        return self._mark(record.queue) > sent or self._is_empty(record.queue)

    def _mark(self, queue: str | None) -> float:
        if queue not in self._marks:
            self._marks[queue] = self.store.queue_progress(queue or "")
        return self._marks[queue]

    def _is_empty(self, queue: str | None) -> bool:
        if queue not in self._empty:
            self._empty[queue] = self.runner.queue_is_empty(queue)
        return self._empty[queue]

__all__ = ["InFlight", "Reaper", "MAX_RESENDS", "RESEND_AFTER_LEASES"]
