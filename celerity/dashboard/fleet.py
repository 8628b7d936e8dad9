"""The fleet as the broker sees it: live workers (Celery's inspect) and queue depths.

Both go through the keyless tools app (``workers.app.create_tools_app``): the
dashboard reads the fleet and can never send a job. A broadcast to the workers
waits its whole timeout for replies, so the answer is kept a few seconds and
shared by every page polling meanwhile; only one broadcast runs at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from broker_config.queues import queue_names
from broker_config.settings import CeleritySettings

INSPECT_TIMEOUT_SECONDS = 1.0
WORKERS_TTL_SECONDS = 5.0
QUEUES_TTL_SECONDS = 1.0


class _Cached:
    """A value computed at most once per ``ttl`` seconds, by one thread at a time."""

    def __init__(self, compute: Callable[[], Any], ttl: float) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: Any = None
        self._at = float("-inf")

    def get(self) -> Any:
        with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                self._value = self._compute()
                self._at = time.monotonic()
            return self._value


class FleetProbe:
    """Workers and queues of the fleet that ``settings`` name."""

    def __init__(self, settings: CeleritySettings) -> None:
        self.settings = settings
        self._app: Any = None
        self._app_lock = threading.Lock()
        self._workers = _Cached(self._inspect_workers, WORKERS_TTL_SECONDS)
        self._queues = _Cached(self._queue_depths, QUEUES_TTL_SECONDS)

    @property
    def app(self) -> Any:
        """The tools app, built on first use (Celery is slow to import)."""
        with self._app_lock:
            if self._app is None:
                from workers.app import create_tools_app

                self._app = create_tools_app(self.settings)
            return self._app

    def workers(self) -> dict[str, Any]:
        """The workers that answered Celery's inspect (only those started with remote
        control on can), by node name."""
        return self._workers.get()  # type: ignore[no-any-return]

    def queues(self) -> list[dict[str, Any]]:
        """Each queue the settings declare, with how many messages wait in it."""
        return self._queues.get()  # type: ignore[no-any-return]

    def _inspect_workers(self) -> dict[str, Any]:
        try:
            stats = self.app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS).stats() or {}
        except Exception as exc:  # broker down: say so on the page, keep serving
            return {"workers": {}, "error": f"{type(exc).__name__}: {exc}"}
        return {"workers": {name: _worker_summary(s) for name, s in stats.items()}, "error": None}

    def _queue_depths(self) -> list[dict[str, Any]]:
        with self.app.pool.acquire(block=True) as connection:
            channel = connection.default_channel
            return [
                {"name": name, "depth": _depth(channel, name)}
                for name in queue_names(self.settings)
            ]


def _depth(channel: Any, name: str) -> int:
    from kombu.exceptions import ChannelError

    try:
        return int(channel.queue_declare(queue=name, passive=True).message_count)
    except ChannelError:  # kombu's Redis transport deletes an empty queue's list
        return 0


def _worker_summary(stats: dict[str, Any]) -> dict[str, Any]:
    pool = stats.get("pool") or {}
    totals = stats.get("total") or {}
    return {
        "pid": stats.get("pid"),
        "uptime": stats.get("uptime"),
        "concurrency": pool.get("max-concurrency"),
        "processed": sum(int(n) for n in totals.values()),
    }
