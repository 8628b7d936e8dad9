"""The run store used by this process: in-memory unless settings name a Redis URL."""

from __future__ import annotations

import threading

from engine.config import current_settings
from engine.store.base import RunStore
from engine.store.memory import MemoryRunStore

_active: RunStore | None = None
_lock = threading.Lock()
_by_url: dict[str, RunStore] = {}


def get_store() -> RunStore:
    """The store this process records runs in (built from settings on first use)."""
    global _active
    if _active is None:
        with _lock:
            if _active is None:
                _active = _store_from_settings()
    return _active


def set_store(store: RunStore | None) -> RunStore | None:
    """Make ``store`` the process's store; returns the previous one."""
    global _active
    with _lock:
        previous, _active = _active, store
    return previous


def store_for_url(url: str) -> RunStore:
    """A store for ``url`` ("memory://" or a Redis URL), shared per URL in this process."""
    if url.startswith("memory://"):
        return get_store() if get_store().url.startswith("memory://") else MemoryRunStore()
    with _lock:
        found = _by_url.get(url)
        if found is None:
            found = _by_url[url] = _redis_store(url)
        return found


def _store_from_settings() -> RunStore:
    settings = current_settings()
    url = settings.effective_store_url
    if not url:
        return MemoryRunStore()
    return _redis_store(url)


def _redis_store(url: str) -> RunStore:
    from engine.store.redis import RedisRunStore

    settings = current_settings()
    return RedisRunStore(
        url,
        prefix=settings.key_prefix,
        retention_seconds=settings.retention_seconds,
        socket_timeout=settings.socket_timeout,
        socket_keepalive=settings.socket_keepalive,
        health_check_interval=settings.health_check_interval,
        lease_seconds=settings.lease_seconds,
    )


__all__ = ["RunStore", "MemoryRunStore", "get_store", "set_store", "store_for_url"]
