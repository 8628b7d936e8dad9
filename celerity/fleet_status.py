"""What the fleet looks like right now: its workers and the depth of its queues.

Workers are found as Celery's tools find them: they answer ``inspect`` when
started with ``CELERITY_REMOTE_CONTROL=true``, and send heartbeats (every 2 s)
when started with ``-E``. Queue depths are read from the broker's Redis, where
each queue is a list (one per priority step) of Celery jobs.

Example::

    for depth in queue_depths(get_settings()):
        print(depth.name, depth.waiting, depth.reserved)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from broker_config.queues import queue_names
from broker_config.settings import CeleritySettings

INSPECT_TIMEOUT_SECONDS = 1.0
# Heartbeats come every 2 s: a little longer catches one from each live worker.
HEARTBEAT_WINDOW_SECONDS = 2.5


@dataclass
class WorkerStatus:
    """One worker or coordinator as the fleet reports it."""

    name: str
    kind: str  # "worker", "coordinator" or "other" (by the node name Celerity gives it)
    status: str  # "online" (answered inspect) or "heartbeat" (seen by its events only)
    active: int | None = None  # jobs running now
    processed: int | None = None  # jobs run since it started
    concurrency: int | None = None
    uptime_seconds: float | None = None
    pid: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class QueueDepth:
    """A queue's jobs: waiting in Redis, and taken by a worker but not acknowledged yet."""

    name: str
    waiting: int
    reserved: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def node_kind(name: str) -> str:
    """``worker`` or ``coordinator`` for a node named ``celerity-<kind>-<pid>@host``."""
    for kind in ("worker", "coordinator"):
        if name.startswith(f"celerity-{kind}-"):
            return kind
    return "other"


def list_workers(settings: CeleritySettings) -> list[WorkerStatus]:
    """The workers that answer ``inspect``, else those whose heartbeats arrive, by name."""
    from workers.app import create_tools_app

    app = create_tools_app(settings)
    try:
        found = _inspected(app) or _heard(app)
    finally:
        app.close()
    return sorted(found.values(), key=lambda status: (status.kind, status.name))


def _inspected(app: Any) -> dict[str, WorkerStatus]:
    inspect = app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS)
    stats = inspect.stats() or {}
    active = (inspect.active() or {}) if stats else {}
    return {name: _from_stats(name, info, active.get(name)) for name, info in stats.items()}


def _from_stats(name: str, info: dict[str, Any], active: list[Any] | None) -> WorkerStatus:
    pool = info.get("pool") or {}
    return WorkerStatus(
        name=name,
        kind=node_kind(name),
        status="online",
        active=len(active) if active is not None else None,
        processed=sum((info.get("total") or {}).values()),
        concurrency=pool.get("max-concurrency"),
        uptime_seconds=info.get("uptime"),
        pid=info.get("pid"),
    )


def _heard(app: Any) -> dict[str, WorkerStatus]:
    """Workers whose heartbeats arrive within the window (workers started with -E)."""
    heard: dict[str, WorkerStatus] = {}
    deadline = time.monotonic() + HEARTBEAT_WINDOW_SECONDS

    def on_heartbeat(event: dict[str, Any]) -> None:
        name = event.get("hostname", "?")
        heard[name] = WorkerStatus(
            name=name,
            kind=node_kind(name),
            status="heartbeat",
            active=event.get("active"),
            processed=event.get("processed"),
            pid=event.get("pid"),
        )
        if time.monotonic() >= deadline:
            receiver.should_stop = True

    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"worker-heartbeat": on_heartbeat})
        try:
            receiver.capture(limit=None, timeout=HEARTBEAT_WINDOW_SECONDS, wakeup=False)
        except TimeoutError:  # no event at all for the whole window
            pass
    return heard


def queue_depths(settings: CeleritySettings) -> list[QueueDepth]:
    """Every queue the settings name (task queues, routed ones, the flow queue), with its jobs."""
    import redis
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    client = redis.Redis.from_url(str(settings.broker_url), socket_timeout=settings.socket_timeout)
    try:
        names = queue_names(settings)
        pipe = client.pipeline(transaction=False)
        for name in names:
            for step in PRIORITY_STEPS:  # kombu keeps one list per priority step
                pipe.llen(f"{name}{Channel.sep}{step}" if step else name)
        lengths = pipe.execute()
        reserved = _reserved_by_queue(client, Channel.unacked_key)
    finally:
        client.close()
    per_queue = len(PRIORITY_STEPS)
    return [
        QueueDepth(name, sum(lengths[i * per_queue : (i + 1) * per_queue]), reserved[name])
        for i, name in enumerate(names)
    ]


def _reserved_by_queue(client: Any, unacked_key: str) -> Counter[str]:
    """Jobs delivered to a worker and not yet acknowledged, by queue (kombu's unacked hash)."""
    counts: Counter[str] = Counter()
    for _, raw in client.hscan_iter(unacked_key):
        try:
            _message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        counts[routing_key] += 1
    return counts
