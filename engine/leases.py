"""Keeping the leases of task runs this process is executing alive.

A Running task run in a shared store carries a lease that expires unless it is
renewed; a lapsed lease tells other processes that the run's worker was lost.
One daemon thread per process renews, in one round trip, the leases of every
run executing here.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("celerity.leases")


class LeaseKeeper:
    """Renews the leases of runs registered with ``holding`` every third of a lease."""

    def __init__(self) -> None:
        self._held: dict[uuid.UUID, Any] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    @contextmanager
    def holding(self, store: Any, task_run_id: uuid.UUID) -> Iterator[None]:
        """Keep ``task_run_id``'s lease alive for the length of the block."""
        if not hasattr(store, "renew_leases"):
            yield  # a process-local store has no leases to keep
            return
        with self._lock:
            self._held[task_run_id] = store
        self._ensure_thread(store.lease_seconds)
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(task_run_id, None)

    def _ensure_thread(self, lease_seconds: float) -> None:
        import os

        # After a fork (prefork pool) the parent's thread does not exist here.
        if self._thread is not None and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        interval = max(lease_seconds / 3, 0.05)
        self._thread = threading.Thread(
            target=self._renew_forever, args=(interval,), name="celerity-leases", daemon=True
        )
        self._thread.start()

    def _renew_forever(self, interval: float) -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            with self._lock:
                by_store: dict[int, tuple[Any, list[uuid.UUID]]] = {}
                for run_id, store in self._held.items():
                    by_store.setdefault(id(store), (store, []))[1].append(run_id)
            for store, run_ids in by_store.values():
                try:
                    store.renew_leases(run_ids)
                except Exception as exc:  # a blip must not kill the keeper
                    logger.warning("Could not renew %d lease(s): %s", len(run_ids), exc)


lease_keeper = LeaseKeeper()
