"""Worker entrypoints: a task-run worker and a coordinator, both Celery workers.

Both run without mingle and gossip: those broadcast on every start and every
few seconds, cost Redis round trips, and Celerity's coordination goes through
the run store instead. Heartbeats and task events are off too unless events are
asked for (``-E``, ``CELERITY_WORKER_EVENTS=true``): then Flower and ``celery
events`` see the workers (heartbeats) and their jobs (task events). Each gets a
unique node name (``celerity-worker-<pid>@<host>``) so that several can share a
host.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from broker_config.settings import CeleritySettings, get_settings
from workers.metrics import serve_metrics_when_ready

QUIET_FLAGS = ["--without-mingle", "--without-gossip", "--without-heartbeat"]
# With events, heartbeats stay on: they are how monitors know a worker is alive.
EVENTS_FLAGS = ["--without-mingle", "--without-gossip", "--task-events"]


def task_queues(settings: CeleritySettings | None = None) -> list[str]:
    """Queues a task-run worker consumes by default: the default queue and routed queues."""
    settings = settings or get_settings()
    names = [settings.default_queue, *settings.task_routes.values()]
    return [name for name in dict.fromkeys(names) if name != settings.flow_queue]


def worker_argv(
    queues: list[str],
    concurrency: int,
    pool: str,
    loglevel: str,
    kind: str,
    events: bool = False,
) -> list[str]:
    """The ``celery worker`` argument list for one Celerity worker process."""
    return [
        "worker",
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency),
        "-P",
        pool,
        "--loglevel",
        loglevel,
        "-n",
        f"celerity-{kind}-{os.getpid()}@%h",
        *(EVENTS_FLAGS if events else QUIET_FLAGS),
    ]


def start_worker(
    queues: list[str] | None = None,
    concurrency: int | None = None,
    pool: str | None = None,
    loglevel: str = "INFO",
    settings: CeleritySettings | None = None,
) -> None:
    """Run a task-run worker in this process until it is stopped (blocks).

    The current directory is importable, as with ``celery worker``, so that
    tasks defined in files there load by their module path. Task events and
    heartbeats are on when ``CELERITY_WORKER_EVENTS`` is.
    """
    from workers.app import get_app

    _import_from_cwd()
    settings = settings or get_settings()
    argv = worker_argv(
        queues or task_queues(settings),
        concurrency or settings.worker_concurrency,
        pool or settings.worker_pool,
        loglevel,
        "worker",
        settings.worker_events,
    )
    _sweep_when_ready()
    serve_metrics_when_ready(settings.worker_metrics_port)
    get_app(settings).worker_main(argv)


def _import_from_cwd() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def start_coordinator(
    concurrency: int = 4,
    loglevel: str = "INFO",
    settings: CeleritySettings | None = None,
) -> None:
    """Run a coordinator in this process until it is stopped (blocks).

    It consumes only the flow queue, with the threads pool: each flow run goes
    to a spawned child process and the thread only waits for it, so
    ``concurrency`` is the number of flow runs this coordinator runs at once.
    """
    from workers.app import get_app

    _import_from_cwd()
    settings = settings or get_settings()
    queues = [settings.flow_queue]
    argv = worker_argv(
        queues, concurrency, "threads", loglevel, "coordinator", settings.worker_events
    )
    _sweep_when_ready()
    serve_metrics_when_ready(settings.worker_metrics_port)
    get_app(settings).worker_main(argv)


def _sweep_when_ready() -> None:
    """Run the fleet-wide flow run sweep in this process once the worker is up.

    Every worker and coordinator sweeps (several sweepers are safe), so a flow
    run whose process died is ended even on a fleet with no coordinator.
    """
    from celery.signals import worker_ready

    from workers.sweeper import start_sweeper

    def on_ready(**_: Any) -> None:
        start_sweeper()

    worker_ready.connect(on_ready, weak=False)


__all__ = ["start_coordinator", "start_worker", "task_queues", "worker_argv"]
