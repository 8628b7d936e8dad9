"""The fleet-wide sweep: flow runs whose process died end Crashed, and retry if they may.

A flow run holds a lease while a process runs it (renewed by that process,
see ``engine.leases``). Every coordinator and worker main process runs one
sweeper thread: every lease period it asks the store for started, unfinished
flow runs whose lease lapsed, ends each Crashed with the reason, together with
its unfinished task runs (``engine.flow_attempts.crash_flow_run``), and, when
the flow allows retries that the run has not used, sends it back to the
coordinators as a new attempt that reuses its completed task runs. Several
sweepers are safe: the compare-and-set lets exactly one end a given run.

Bound: a flow run whose process was killed is Crashed within two lease
periods (one for its lease to lapse, one sweep).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from engine.flow_attempts import crash_flow_run, lapsed_lease_reason
from engine.store import get_store
from engine.store.base import SharedRunStore
from workers.metrics import LAPSED_FLOW_RUN, count_recovery

logger = logging.getLogger("celerity.sweeper")


class FlowRunSweeper:
    """A daemon thread sweeping the store for flow runs whose process was lost."""

    def __init__(self, store: SharedRunStore) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="celerity-sweeper", daemon=True)

    def start(self) -> FlowRunSweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.store.lease_seconds):
            try:
                self.sweep_once()
            except Exception as exc:  # a Redis blip: sweep again next period
                logger.warning("Flow run sweep failed: %s", exc)

    def sweep_once(self) -> list[uuid.UUID]:
        """End every lapsed flow run once; the ids this sweeper ended."""
        ended = []
        for flow_run in self.store.lapsed_flow_runs():
            reason = lapsed_lease_reason(flow_run)
            if crash_flow_run(self.store, flow_run, reason):
                logger.error("Flow run %s (%s) crashed: %s", flow_run.id, flow_run.name, reason)
                count_recovery(self.store, LAPSED_FLOW_RUN)
                ended.append(flow_run.id)
                retry_if_allowed(self.store, flow_run.id)
        return ended


def retry_if_allowed(store: SharedRunStore, flow_run_id: uuid.UUID) -> bool:
    """Send a crashed flow run back to the coordinators if its flow has retries left."""
    try:
        flow_run = store.read_flow_run(flow_run_id)
        if flow_run.flow_ref is None:
            return False  # not importable by name: only its own process could run it
        retries = _flow_retries(flow_run.flow_ref)
    except Exception as exc:  # e.g. gone, or the flow no longer imports here
        logger.warning("Flow run %s is not retried automatically: %s", flow_run_id, exc)
        return False
    # A run whose coordinator died before starting it never ran: it goes back
    # to the coordinators whatever its retries, as Celery redelivers a job.
    if flow_run.run_count > retries and flow_run.run_count > 0:
        return False
    from workers.producer import resubmit_flow_run

    logger.warning(
        "Retrying crashed flow run %s (attempt %d of %d).",
        flow_run_id,
        flow_run.run_count + 1,
        retries + 1,
    )
    resubmit_flow_run(flow_run, reason=f"Crashed; retry {flow_run.run_count} of {retries}.")
    return True


def _flow_retries(flow_ref: dict[str, Any]) -> int:
    from workers.coordinator import load_flow

    return int(load_flow(flow_ref).retries or 0)


def start_sweeper() -> FlowRunSweeper | None:
    """Start this process's sweeper when the store is shared (a fleet process)."""
    store = get_store()
    if not isinstance(store, SharedRunStore):
        return None
    return FlowRunSweeper(store).start()


__all__ = ["FlowRunSweeper", "retry_if_allowed", "start_sweeper"]
