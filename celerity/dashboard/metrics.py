"""The dashboard's Prometheus endpoint: runs by state, task durations, queues, workers,
lease recoveries.

Everything is read when Prometheus scrapes (a custom collector), so the
workers pay nothing for it on their per-task path. Families:

- ``celerity_flow_runs{state}``, ``celerity_task_runs{state}`` (gauges): the
  most recent flow runs (``runs.WINDOW`` of them) and their task runs, by state name.
- ``celerity_task_run_duration_seconds{task}`` (histogram): the run time of each
  task run seen final by this dashboard, counted once (a counter since the
  dashboard started, as Prometheus expects; it starts with the runs in the window).
- ``celerity_queue_depth{queue}``, ``celerity_queue_reserved{queue}`` (gauges): jobs
  waiting in each declared queue, and taken by a worker but not acknowledged yet.
- ``celerity_workers_alive`` (gauge): workers and coordinators that answered Celery's
  inspect (``CELERITY_REMOTE_CONTROL=true``) or else sent heartbeats (``-E``).
- ``celerity_lease_recoveries_total{kind}`` (counter): runs the reapers and
  sweepers recovered (``workers.metrics``).
- ``celerity_metrics_source_up{source}`` (gauge): 0 when a source (store, broker)
  could not be read at this scrape; its families are left out then.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from celerity.dashboard.fleet import FleetProbe
from celerity.dashboard.runs import RunReader
from celerity.run_details import duration_seconds
from engine.schemas import TaskRun

logger = logging.getLogger("celerity.dashboard")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_REMEMBERED_RUNS = 200_000  # task run ids already observed (bounded memory)


class TaskDurations:
    """A cumulative histogram of task run durations per task, each run observed once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe_final(self, task_runs: Iterable[TaskRun]) -> None:
        """Observe every final task run that ran and was not observed before."""
        with self._lock:
            for run in task_runs:
                if run.id in self._seen or run.state is None or not run.state.is_final():
                    continue
                seconds = duration_seconds(run)
                if seconds is None:
                    continue  # never started (NotReady, crashed before running)
                self._remember(run.id)
                self._observe(run.task_key or run.name, seconds)

    def _remember(self, run_id: uuid.UUID) -> None:
        self._seen[run_id] = None
        if len(self._seen) > _REMEMBERED_RUNS:
            self._seen.popitem(last=False)

    def _observe(self, task: str, seconds: float) -> None:
        counts = self._counts.setdefault(task, [0] * (len(BUCKETS) + 1))
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[index] += 1
        counts[-1] += 1  # +Inf
        self._sums[task] = self._sums.get(task, 0.0) + seconds

    def family(self) -> HistogramMetricFamily:
        """The histogram as a Prometheus metric family."""
        family = HistogramMetricFamily(
            "celerity_task_run_duration_seconds",
            "Run time of finished task runs, per task (each run counted once).",
            labels=["task"],
        )
        bounds = [repr(float(b)) for b in BUCKETS] + ["+Inf"]
        with self._lock:
            for task, counts in sorted(self._counts.items()):
                family.add_metric([task], list(zip(bounds, counts, strict=True)), self._sums[task])
        return family


class DashboardCollector(Collector):
    """Collects every family from the store and the broker at scrape time."""

    def __init__(self, reader: RunReader, fleet: FleetProbe) -> None:
        self.reader = reader
        self.fleet = fleet
        self.durations = TaskDurations()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "celerity_metrics_source_up",
            "Whether a source of these metrics could be read at this scrape.",
            labels=["source"],
        )
        for source, families in (("store", self._store_families), ("broker", self._fleet)):
            try:
                collected, readable = list(families()), 1.0
            except Exception as exc:  # report the outage as a metric, keep the rest
                logger.warning("Metrics from the %s are unavailable: %s", source, exc)
                collected, readable = [], 0.0
            up.add_metric([source], readable)
            yield from collected
        yield up

    def _store_families(self) -> Iterator[Metric]:
        flow_runs = self.reader.recent()
        task_runs = [run for flow_run in flow_runs for run in self.reader.task_runs(flow_run)]
        yield _by_state("celerity_flow_runs", "Recent flow runs by state.", flow_runs)
        yield _by_state(
            "celerity_task_runs", "Task runs of the recent flow runs, by state.", task_runs
        )
        self.durations.observe_final(task_runs)
        yield self.durations.family()
        yield self._recoveries()

    def _recoveries(self) -> CounterMetricFamily:
        from workers.metrics import read_recoveries

        family = CounterMetricFamily(
            "celerity_lease_recoveries",
            "Runs recovered after their process or message was lost, by kind.",
            labels=["kind"],
        )
        if hasattr(self.reader.store, "client"):  # a shared (Redis) store
            for kind, count in sorted(read_recoveries(self.reader.store).items()):
                family.add_metric([kind], count)
        return family

    def _fleet(self) -> Iterator[Metric]:
        queues, alive = self.fleet.queues(), self.fleet.workers()
        if alive["error"]:
            raise RuntimeError(alive["error"])
        waiting = GaugeMetricFamily(
            "celerity_queue_depth", "Jobs waiting in each queue.", labels=["queue"]
        )
        reserved = GaugeMetricFamily(
            "celerity_queue_reserved",
            "Jobs of each queue taken by a worker and not acknowledged yet.",
            labels=["queue"],
        )
        for queue in queues:
            waiting.add_metric([queue["name"]], queue["waiting"])
            reserved.add_metric([queue["name"]], queue["reserved"])
        yield from (waiting, reserved)
        yield GaugeMetricFamily(
            "celerity_workers_alive",
            "Workers and coordinators that answered Celery's inspect (remote control on) "
            "or else sent heartbeats (-E).",
            value=len(alive["workers"]),
        )


def _by_state(name: str, documentation: str, runs: Iterable[Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["state"])
    counts = Counter(run.state.name if run.state is not None else "None" for run in runs)
    for state, count in sorted(counts.items()):
        family.add_metric([state], count)
    return family


def metrics_registry(reader: RunReader, fleet: FleetProbe) -> CollectorRegistry:
    """A registry of its own (not the process-global one) holding the dashboard's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DashboardCollector(reader, fleet))
    return registry
