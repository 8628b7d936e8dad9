"""Locks among the threads and tasks of one process (the embedded default)."""

from __future__ import annotations

import threading
import time
from typing import Any, NamedTuple

from engine.locking._polling import apoll


class _Held(NamedTuple):
    holder: str
    expires_at: float | None  # time.monotonic(); None: until released


class MemoryLockManager:
    """Named locks kept in this process; there is one manager per process.

    Every ``MemoryLockManager()`` is the same object, so two result stores
    built with one each still exclude each other. Example::

        locks = MemoryLockManager()
        if locks.acquire_lock("nightly", holder="me", acquire_timeout=5):
            try: ...
            finally: locks.release_lock("nightly", holder="me")
    """

    _instance: MemoryLockManager | None = None
    _instance_guard = threading.Lock()

    def __new__(cls, *args: Any, **kwargs: Any) -> MemoryLockManager:
        with cls._instance_guard:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._held = {}
                instance._changed = threading.Condition()
                cls._instance = instance
            return cls._instance

    _held: dict[str, _Held]
    _changed: threading.Condition

    def _current(self, key: str) -> _Held | None:
        """The live lock on ``key`` (a lapsed one is dropped); call with ``_changed`` held."""
        held = self._held.get(key)
        if held is not None and held.expires_at is not None and held.expires_at <= time.monotonic():
            del self._held[key]
            self._changed.notify_all()
            return None
        return held

    def _try_acquire(self, key: str, holder: str, hold_timeout: float | None) -> bool:
        with self._changed:
            held = self._current(key)
            if held is not None and held.holder != holder:
                return False
            expires = None if hold_timeout is None else time.monotonic() + hold_timeout
            self._held[key] = _Held(holder, expires)
            return True

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take the lock on ``key`` for ``holder`` (see ``LockManager.acquire_lock``)."""
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        with self._changed:
            while not self._try_acquire(key, holder, hold_timeout):
                wait = self._wait_seconds(key, deadline)
                if wait is not None and wait <= 0:
                    return False
                self._changed.wait(wait)
            return True

    def _wait_seconds(self, key: str, deadline: float | None) -> float | None:
        """How long to sleep before looking again: until the deadline or the lock lapses."""
        moments = [deadline, self._held[key].expires_at if key in self._held else None]
        upcoming = [moment for moment in moments if moment is not None]
        return min(upcoming) - time.monotonic() if upcoming else None

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """``acquire_lock`` for coroutines: tasks of the same loop keep running meanwhile."""
        return await apoll(lambda: self._try_acquire(key, holder, hold_timeout), acquire_timeout)

    def release_lock(self, key: str, holder: str) -> None:
        """Release ``holder``'s lock on ``key``; ValueError if it does not hold it."""
        with self._changed:
            held = self._current(key)
            if held is None or held.holder != holder:
                raise ValueError(f"No lock held by {holder} for transaction with key {key}")
            del self._held[key]
            self._changed.notify_all()

    def is_locked(self, key: str) -> bool:
        """True while someone holds an unexpired lock on ``key``."""
        with self._changed:
            return self._current(key) is not None

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """True if ``holder`` holds the lock on ``key``."""
        with self._changed:
            held = self._current(key)
            return held is not None and held.holder == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is free; False if it is still locked after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._current(key) is not None:
                wait = self._wait_seconds(key, deadline)
                if wait is not None and wait <= 0:
                    return False
                self._changed.wait(wait)
            return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """``wait_for_lock`` for coroutines."""
        return await apoll(lambda: not self.is_locked(key), timeout)

    def __repr__(self) -> str:
        return "MemoryLockManager()"


__all__ = ["MemoryLockManager"]
