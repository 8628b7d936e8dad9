"""Keeping the leases of the runs this process holds alive.

In a shared store a task run is leased to the worker that took its message
(and then runs it), and a flow run to the process that runs it; a lease expires
unless it is renewed, and a lapsed lease tells other processes that the holder
was lost. One daemon thread per process renews, in one round trip, the leases
of every run held here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.store.base import SharedRunStore

logger = logging.getLogger("celerity.leases")


def worker_identity() -> str:
    """``host:pid``: the process that holds a lease or ran a run."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaseKeeper:
    """Renews the leases of runs registered with ``holding`` every third of a lease."""

    def __init__(self) -> None:
        self._held: dict[uuid.UUID, Any] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._wake = threading.Event()
        self._shortest = float("inf")  # the shortest lease of any store held here

    @contextmanager
    def holding(self, store: Any, *run_ids: uuid.UUID) -> Iterator[None]:
        """Keep the leases of ``run_ids`` alive for the length of the block."""
        if not isinstance(store, SharedRunStore):
            yield  # a process-local store has no leases to keep
            return
        with self._lock:
            for run_id in run_ids:
                self._held[run_id] = store
        self._ensure_thread(store.lease_seconds)
        try:
            yield
        finally:
            with self._lock:
                for run_id in run_ids:
                    self._held.pop(run_id, None)

    def _ensure_thread(self, lease_seconds: float) -> None:
        # A store with a shorter lease than any before wakes the thread, which
        # then renews at the new pace.
        if lease_seconds < self._shortest:
            self._shortest = lease_seconds
            self._wake.set()
        # After a fork (prefork pool) the parent's thread does not exist here.
        if self._thread is not None and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(
            target=self._renew_forever, name="celerity-leases", daemon=True
        )
        self._thread.start()

    def _renew_forever(self) -> None:
        while True:
            self._wake.wait(max(self._shortest / 3, 0.05))
            self._wake.clear()
            self._renew_once()

    def _renew_once(self) -> None:
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
