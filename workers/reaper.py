"""The coordinator's reaper: finds dispatched task runs whose worker was lost.

A Running task run holds a lease its worker renews. If the whole worker dies,
its unacknowledged message only comes back after the broker's visibility
timeout (an hour), so the coordinator looks itself: every lease period it
checks the runs it has dispatched and not yet seen finish; a run that is
Running (or waiting to retry) with no lease is orphaned. It is moved to a new
attempt and sent again while retries remain, else it ends Crashed.

It also makes sure the flow run does not wait forever for runs whose outcome
can no longer arrive: a dispatched run whose record is gone from the store
(Redis restarted without persistence) and, once the store has been
unreachable for ``OUTAGE_LEASES`` lease periods, every dispatched run, end
Crashed in this process with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from engine.schemas import TaskRun
from engine.store.redis import RedisRunStore, masked_url

logger = logging.getLogger("celerity.reaper")

Resend = Callable[[uuid.UUID], None]
Lose = Callable[[uuid.UUID, str], None]

# Lease periods of a store outage after which dispatched runs are given up.
OUTAGE_LEASES = 4


class Reaper:
    """A daemon thread that re-dispatches orphaned runs of one task runner."""

    def __init__(
        self,
        store: RedisRunStore,
        inflight: Callable[[], dict[uuid.UUID, Any]],
        resend: Resend,
        retries_of: Callable[[uuid.UUID], int],
        lose: Lose,
    ) -> None:
        self.store = store
        self._lose = lose
        self._inflight = inflight
        self._resend = resend
        self._retries_of = retries_of
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="celerity-reaper", daemon=True)

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
        run_ids = list(self._inflight())
        logger.error("%s Giving up on %d dispatched task run(s).", reason, len(run_ids))
        for run_id in run_ids:
            self._lose(run_id, f"{reason} The outcome of this task run is unknown.")

    def reap_once(self) -> int:
        """Check every in-flight run once; returns how many were re-dispatched or crashed."""
        run_ids = list(self._inflight())
        found = self.store.runs_with_leases(run_ids)
        gone = [run_id for run_id, (run, _) in zip(run_ids, found, strict=True) if run is None]
        for run_id in gone:
            self._lose(
                run_id,
                f"Task run {run_id} is no longer in the run store at {masked_url(self.store.url)} "
                "(was Redis restarted without persistence, or its keys deleted?).",
            )
        orphans = self._orphans(found)
        for run in orphans:
            self._recover(run)
        return len(orphans) + len(gone)

    def _orphans(self, found: list[tuple[Any, str | None]]) -> list[TaskRun]:
        orphans = []
        for run, holder in found:
            if holder is not None or not isinstance(run, TaskRun):
                continue
            state = run.state
            # A retry wait counts only while a worker owns it (it keeps the
            # lease); one set by a takeover is simply waiting for a worker.
            owned_wait = (
                state is not None and state.name == "AwaitingRetry" and state.state_details.worker
            )
            if state is not None and (state.is_running() or owned_wait):
                orphans.append(run)
        return orphans

    def _recover(self, run: TaskRun) -> None:
        from workers.execution import take_over

        if take_over(run, run.state, self._retries_of(run.id)):  # type: ignore[arg-type]
            self._resend(run.id)
