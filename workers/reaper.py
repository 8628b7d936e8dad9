"""The coordinator's reaper: finds dispatched task runs whose worker was lost.

A Running task run holds a lease its worker renews. If the whole worker dies,
its unacknowledged message only comes back after the broker's visibility
timeout (an hour), so the coordinator looks itself: every lease period it
checks the runs it has dispatched and not yet seen finish; a run that is
Running (or waiting to retry) with no lease is orphaned. It is moved to a new
attempt and sent again while retries remain, else it ends Crashed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from engine.schemas import TaskRun
from engine.store.redis import RedisRunStore

logger = logging.getLogger("celerity.reaper")

Resend = Callable[[uuid.UUID], None]


class Reaper:
    """A daemon thread that re-dispatches orphaned runs of one task runner."""

    def __init__(
        self,
        store: RedisRunStore,
        inflight: Callable[[], dict[uuid.UUID, Any]],
        resend: Resend,
        retries_of: Callable[[uuid.UUID], int],
    ) -> None:
        self.store = store
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
        while not self._stop.wait(self.store.lease_seconds):
            try:
                self.reap_once()
            except Exception as exc:  # keep reaping after a Redis blip
                logger.warning("Reaper pass failed: %s", exc)

    def reap_once(self) -> int:
        """Check every in-flight run once; returns how many were re-dispatched or crashed."""
        run_ids = list(self._inflight())
        orphans = self._orphans(run_ids)
        for run in orphans:
            self._recover(run)
        return len(orphans)

    def _orphans(self, run_ids: list[uuid.UUID]) -> list[TaskRun]:
        found = []
        for run, holder in self.store.runs_with_leases(run_ids):
            if holder is not None or not isinstance(run, TaskRun):
                continue
            state = run.state
            # A retry wait counts only while a worker owns it (it keeps the
            # lease); one set by a takeover is simply waiting for a worker.
            owned_wait = (
                state is not None and state.name == "AwaitingRetry" and state.state_details.worker
            )
            if state is not None and (state.is_running() or owned_wait):
                found.append(run)
        return found

    def _recover(self, run: TaskRun) -> None:
        from workers.execution import take_over

        if take_over(run, run.state, self._retries_of(run.id)):  # type: ignore[arg-type]
            self._resend(run.id)
