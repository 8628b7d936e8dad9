"""The lock manager contract: named locks, each held by one holder at a time.

A holder is a string that names who holds a lock (``host:pid:thread`` by
default, see ``engine.results.ResultStore.generate_default_holder``), so a
lock taken in one thread or task may be released from another by the same
holder. A lock with a ``hold_timeout`` lapses on its own, so a holder that
dies cannot keep a key locked for ever.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class LockManager(Protocol):
    """What a transaction needs to serialize work on a key (``IsolationLevel.SERIALIZABLE``)."""

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take the lock on ``key`` for ``holder``, waiting up to ``acquire_timeout``
        seconds (None: as long as it takes); True if held (also when ``holder``
        already held it). ``hold_timeout`` makes the lock lapse after that long."""
        ...

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """``acquire_lock`` without blocking the event loop."""
        ...

    def release_lock(self, key: str, holder: str) -> None:
        """Release ``holder``'s lock on ``key``; ValueError if ``holder`` does not hold it."""
        ...

    def is_locked(self, key: str) -> bool:
        """True while someone holds an unexpired lock on ``key``."""
        ...

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """True if ``holder`` holds the lock on ``key``."""
        ...

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is not locked; False if still locked after ``timeout`` seconds."""
        ...

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """``wait_for_lock`` without blocking the event loop."""
        ...


__all__ = ["LockManager"]
