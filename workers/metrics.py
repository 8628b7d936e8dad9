"""Fleet counters that only the fleet's own processes can know, kept in Redis for scrapers.

A lease recovery (a coordinator's reaper sending a task run again after its
worker died or its message was lost, a sweeper ending a flow run whose process
died) leaves no trace in the run store that says "recovered": the run simply
goes on. The reaper and the sweeper count each recovery here, in one Redis hash
per deployment (one HINCRBY, on the rare recovery path only, never per task
run), and the dashboard's ``/metrics`` exports the counts as
``celerity_lease_recoveries_total{kind=...}``.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("celerity.metrics")

# What was recovered: a Running task run whose worker stopped renewing its lease
# (sent again), a task run whose message was lost before any worker started it
# (sent again), a flow run whose process died (ended Crashed by a sweeper).
ORPHANED_TASK_RUN = "orphaned_task_run"
LOST_MESSAGE = "lost_message"
LAPSED_FLOW_RUN = "lapsed_flow_run"
RECOVERY_KINDS = (ORPHANED_TASK_RUN, LOST_MESSAGE, LAPSED_FLOW_RUN)


def recoveries_key(prefix: str) -> str:
    """The Redis hash of recovery counts (field: kind) of the deployment under ``prefix``."""
    return f"{prefix}:metrics:recoveries"


def count_recovery(store: Any, kind: str) -> None:
    """Add one recovery of ``kind`` to the shared count; never raises (a count is not
    worth failing a recovery for)."""
    try:
        store.client.hincrby(recoveries_key(store.prefix), kind, 1)
    except Exception as exc:  # Redis unreachable: the recovery itself matters more
        logger.debug("Could not count a %s recovery: %s", kind, exc)


def read_recoveries(store: Any) -> dict[str, int]:
    """Every recovery kind with its count so far (0 for kinds never counted)."""
    raw = store.client.hgetall(recoveries_key(store.prefix))
    counts = {kind: 0 for kind in RECOVERY_KINDS}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        counts[name] = int(value)
    return counts


__all__ = [
    "LAPSED_FLOW_RUN",
    "LOST_MESSAGE",
    "ORPHANED_TASK_RUN",
    "RECOVERY_KINDS",
    "count_recovery",
    "read_recoveries",
    "recoveries_key",
]
