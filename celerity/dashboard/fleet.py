"""The fleet as the broker sees it, for the dashboard: ``celerity.fleet_status`` (what
``workers ls`` and ``queues ls`` print), kept a few seconds.

Asking the workers takes a broadcast that waits its whole timeout (or a window of
heartbeats), so the answer is shared by every page polling meanwhile, and only one
thread asks at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from broker_config.settings import CeleritySettings
from celerity.fleet_status import list_workers, queue_depths

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
        self._workers = _Cached(self._ask_workers, WORKERS_TTL_SECONDS)
        self._queues = _Cached(self._read_queues, QUEUES_TTL_SECONDS)

    def workers(self) -> dict[str, Any]:
        """``{"workers": [...], "error": None}``: the workers that answered Celery's inspect
        (remote control on) or else sent heartbeats (``-E``); the error if none could be asked."""
        return self._workers.get()

    def queues(self) -> list[dict[str, Any]]:
        """Each queue the settings declare: jobs waiting in it, and reserved by a worker."""
        return self._queues.get()

    def _ask_workers(self) -> dict[str, Any]:
        try:
            found = list_workers(self.settings)
        except Exception as exc:  # broker down: say so on the page, keep serving
            return {"workers": [], "error": f"{type(exc).__name__}: {exc}"}
        return {"workers": [worker.as_dict() for worker in found], "error": None}

    def _read_queues(self) -> list[dict[str, Any]]:
        return [depth.as_dict() for depth in queue_depths(self.settings)]
