"""Locks in Redis, shared by every process of a fleet (redis-py's ``Lock``).

With this manager ``IsolationLevel.SERIALIZABLE`` holds across workers,
coordinators and hosts: a transaction on a key waits for any other holder of
that key anywhere in the fleet.

A lock taken without a ``hold_timeout`` is a lease: it expires after
``lease_seconds`` unless renewed, and a thread of the holding process renews
it every third of that while it is held. A holder that dies (a SIGKILLed
worker) so frees its keys within one lease instead of locking them for ever.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from engine.locking._polling import apoll, poll

if TYPE_CHECKING:
    import redis as redis_lib
    from redis.lock import Lock


class RedisLockManager:
    """A lock on ``key`` is the Redis string ``<prefix>:lock:<key>`` holding its holder.

    Give a ``url`` (a client is made on first use) or a ready ``client``.
    Example::

        store = ResultStore(lock_manager=RedisLockManager(url="redis://localhost:6379/0"))
    """

    def __init__(
        self,
        url: str | None = None,
        client: redis_lib.Redis | None = None,
        prefix: str = "celerity",
        lease_seconds: float = 30.0,
    ) -> None:
        if url is None and client is None:
            raise ValueError("RedisLockManager needs a url or a client.")
        self.url = url
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self._client = client
        self._leases: dict[str, str] = {}  # key -> holder, for the locks renewed here
        self._leases_changed = threading.Condition()
        self._renewer: threading.Thread | None = None

    @property
    def client(self) -> redis_lib.Redis:
        """The Redis client (made from ``url`` on first use)."""
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(str(self.url))
        return self._client

    def _name(self, key: str) -> str:
        return f"{self.prefix}:lock:{key}"

    def _lock(self, key: str, hold_timeout: float | None = None) -> Lock:
        # Not thread-local: the holder, not the thread, owns the lock.
        return self.client.lock(self._name(key), timeout=hold_timeout, thread_local=False)

    def _try_acquire(self, key: str, holder: str, hold_timeout: float | None) -> bool:
        if self.is_lock_holder(key, holder):
            return True
        leased = hold_timeout is None
        lock = self._lock(key, self.lease_seconds if leased else hold_timeout)
        if not lock.acquire(blocking=False, token=holder):
            return False
        if leased:
            self._renew_while_held(key, holder)
        return True

    # --- leases ----------------------------------------------------------------------------

    def _renew_while_held(self, key: str, holder: str) -> None:
        with self._leases_changed:
            self._leases[key] = holder
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(
                    target=self._renew_leases, name="celerity-lock-renewer", daemon=True
                )
                self._renewer.start()

    def _forget_lease(self, key: str) -> None:
        with self._leases_changed:
            self._leases.pop(key, None)
            self._leases_changed.notify_all()

    def _renew_leases(self) -> None:
        """Reset the expiry of every lock held here, every third of a lease, while any is."""
        from redis.exceptions import LockError, RedisError

        while True:
            with self._leases_changed:
                self._leases_changed.wait(self.lease_seconds / 3)
                if not self._leases:
                    self._renewer = None
                    return
                held = dict(self._leases)
            for key, holder in held.items():
                try:
                    self._renew(key, holder)
                except LockError:
                    self._forget_lease(key)  # lapsed and taken by someone else
                except RedisError:
                    pass  # Redis away for a moment: the next round tries again

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take the lock on ``key`` for ``holder`` (see ``LockManager.acquire_lock``)."""
        return poll(lambda: self._try_acquire(key, holder, hold_timeout), acquire_timeout)

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """``acquire_lock`` for coroutines."""
        return await apoll(lambda: self._try_acquire(key, holder, hold_timeout), acquire_timeout)

    def _renew(self, key: str, holder: str) -> None:
        lock = self._lock(key, self.lease_seconds)
        lock.local.token = holder.encode()  # renew as the holder, whoever took it
        lock.reacquire()

    def release_lock(self, key: str, holder: str) -> None:
        """Release ``holder``'s lock on ``key``; ValueError if it does not hold it."""
        from redis.exceptions import LockError

        try:
            self._lock(key).do_release(expected_token=holder)
        except LockError:
            raise ValueError(f"No lock held by {holder} for transaction with key {key}") from None
        finally:
            if self._leases.get(key) == holder:
                self._forget_lease(key)

    def is_locked(self, key: str) -> bool:
        """True while someone holds the lock on ``key`` (Redis expires lapsed ones)."""
        return bool(self.client.exists(self._name(key)))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """True if ``holder`` holds the lock on ``key``."""
        return self.client.get(self._name(key)) == holder.encode()

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is free; False if it is still locked after ``timeout`` seconds."""
        return poll(lambda: not self.is_locked(key), timeout)

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """``wait_for_lock`` for coroutines."""
        return await apoll(lambda: not self.is_locked(key), timeout)

    def close(self) -> None:
        """Close the client this manager made (a client passed in is left open)."""
        self._forget_all_leases()
        if self._client is not None and self.url is not None:
            self._client.close()
            self._client = None

    def _forget_all_leases(self) -> None:
        with self._leases_changed:
            self._leases.clear()
            self._leases_changed.notify_all()

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, RedisLockManager):
            return False
        if self.url is None or other.url is None:
            return self._client is other._client and self.prefix == other.prefix
        return (self.url, self.prefix) == (other.url, other.prefix)

    def __hash__(self) -> int:
        return hash((self.url, self.prefix))

    def __repr__(self) -> str:
        from broker_config.settings import mask_url

        where = mask_url(self.url) if self.url else "client"
        return f"RedisLockManager({where!r}, prefix={self.prefix!r})"


__all__ = ["RedisLockManager"]
