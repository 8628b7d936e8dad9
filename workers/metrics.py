"""Metrics that only the fleet's own processes can know: lease recoveries (kept in Redis for
the dashboard's ``/metrics``) and, when asked for, a Prometheus endpoint on each worker.

A lease recovery (a coordinator's reaper sending a task run again after its
worker died or its message was lost, a sweeper ending a flow run whose process
died) leaves no trace in the run store that says "recovered": the run simply
goes on. The reaper and the sweeper count each recovery here, in one Redis hash
per deployment (one HINCRBY, on the rare recovery path only, never per task
run), and the dashboard's ``/metrics`` exports the counts as
``celerity_lease_recoveries_total{kind=...}``.

With ``CELERITY_WORKER_METRICS_PORT`` set, each worker and coordinator serves
Prometheus metrics of its own on that port once it is ready: the jobs it ran
by Celery task name, the jobs running and reserved now (Celery keeps these
counts anyway; they are read when scraped) and the process's CPU, memory and
file descriptors. Nothing is added to the per-task path.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
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


# --- the worker's own endpoint ------------------------------------------------------------------


# prometheus_client loads only in a process that serves metrics: every fleet process imports
# this module (the reaper and the sweeper count recoveries), flow run children included.


class WorkerCollector:
    """This worker's job counts as Celery's worker state holds them, read at scrape time."""

    def __init__(self, node: str) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        """The families of one scrape (a prometheus_client collector)."""
        from celery.worker import state
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        jobs = CounterMetricFamily(
            "celerity_worker_jobs",
            "Celery jobs this worker accepted since it started, by Celery task name.",
            labels=["node", "task"],
        )
        for task, count in sorted(state.total_count.items()):
            jobs.add_metric([self.node, task], count)
        yield jobs
        for name, requests, documentation in (
            ("celerity_worker_active_jobs", state.active_requests, "Jobs running now."),
            ("celerity_worker_reserved_jobs", state.reserved_requests, "Jobs taken, not started."),
        ):
            gauge = GaugeMetricFamily(name, documentation, labels=["node"])
            gauge.add_metric([self.node], len(requests))
            yield gauge


def worker_registry(node: str) -> Any:
    """A registry with this worker's job counts and its process's resource use."""
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(node))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def serve_worker_metrics(port: int | None, node: str, host: str = "0.0.0.0") -> bool:
    """Serve this worker's metrics on ``port`` in a daemon thread (nothing when ``port`` is
    None); whether it serves. A port another process holds is a warning, not a failure:
    the worker itself matters more than its metrics."""
    if port is None:
        return False
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host, registry=worker_registry(node))
    except OSError as exc:
        logger.warning("Worker metrics are not served on port %s: %s", port, exc)
        return False
    logger.info("Worker metrics on http://%s:%s/metrics", socket.gethostname(), port)
    return True


def serve_metrics_when_ready(port: int | None) -> None:
    """Once this Celery worker is ready, serve its metrics on ``port`` (if not None), named
    after its node (``celerity-worker-<pid>@host``)."""
    if port is None:
        return
    from celery.signals import worker_ready

    def on_ready(sender: Any = None, **_: Any) -> None:
        serve_worker_metrics(port, str(getattr(sender, "hostname", None) or socket.gethostname()))

    worker_ready.connect(on_ready, weak=False)


__all__ = [
    "LAPSED_FLOW_RUN",
    "LOST_MESSAGE",
    "ORPHANED_TASK_RUN",
    "RECOVERY_KINDS",
    "count_recovery",
    "read_recoveries",
    "recoveries_key",
    "serve_metrics_when_ready",
    "serve_worker_metrics",
    "worker_registry",
]
