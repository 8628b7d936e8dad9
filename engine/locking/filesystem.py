"""Locks as files in a directory: they exclude every process that sees the directory."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from engine.locking._polling import apoll, poll


class FileSystemLockManager:
    """A lock on ``key`` is the file ``<lock_files_directory>/<key>.lock``.

    The file is created atomically (``O_CREAT | O_EXCL``), so two processes on
    one host (or on a shared file system with atomic create) cannot both take
    it; it names its holder and, with a ``hold_timeout``, when it lapses.
    Example::

        locks = FileSystemLockManager(lock_files_directory="/shared/locks")
    """

    def __init__(self, lock_files_directory: str | Path) -> None:
        self.lock_files_directory = Path(lock_files_directory).expanduser()

    def _path(self, key: str) -> Path:
        return self.lock_files_directory / f"{key}.lock"

    def _read(self, key: str) -> dict[str, object] | None:
        """The live lock file's content, removing it when it has lapsed."""
        path = self._path(key)
        try:
            text = path.read_text()
            content = json.loads(text)
        except FileNotFoundError:
            return None
        except ValueError:  # a holder is writing it right now: it is held
            return {"holder": None, "expires_at": None}
        expires_at = content.get("expires_at")
        if isinstance(expires_at, (int, float)) and expires_at <= time.time():
            _break_lapsed(path, text)
            return None
        return content

    def _try_acquire(self, key: str, holder: str, hold_timeout: float | None) -> bool:
        content = self._read(key)
        if content is not None:
            return content.get("holder") == holder
        self.lock_files_directory.mkdir(parents=True, exist_ok=True)
        expires_at = None if hold_timeout is None else time.time() + hold_timeout
        try:
            descriptor = os.open(self._path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False  # another holder created it first
        with os.fdopen(descriptor, "w") as out:
            json.dump({"holder": holder, "expires_at": expires_at}, out)
        return True

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

    def release_lock(self, key: str, holder: str) -> None:
        """Release ``holder``'s lock on ``key``; ValueError if it does not hold it."""
        if not self.is_lock_holder(key, holder):
            raise ValueError(f"No lock held by {holder} for transaction with key {key}")
        self._path(key).unlink(missing_ok=True)

    def is_locked(self, key: str) -> bool:
        """True while a live lock file exists for ``key``."""
        return self._read(key) is not None

    def is_lock_holder(self, key: str, holder: str) -> bool:
        """True if ``holder`` holds the lock on ``key``."""
        content = self._read(key)
        return content is not None and content.get("holder") == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is free; False if it is still locked after ``timeout`` seconds."""
        return poll(lambda: not self.is_locked(key), timeout)

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """``wait_for_lock`` for coroutines."""
        return await apoll(lambda: not self.is_locked(key), timeout)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FileSystemLockManager)
            and other.lock_files_directory == self.lock_files_directory
        )

    def __hash__(self) -> int:
        return hash(self.lock_files_directory)

    def __repr__(self) -> str:
        return f"FileSystemLockManager(lock_files_directory={str(self.lock_files_directory)!r})"


def _break_lapsed(path: Path, seen: str) -> None:
    """Remove the lapsed lock file whose text was ``seen``, unless it changed meanwhile.

    Another process may have broken it and taken the key between our read and
    now: the file is moved aside first (atomic), and put back if what was moved
    is not the lapsed lock we saw.
    """
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.lapsed")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # broken by someone else already
    try:
        if aside.read_text() != seen:
            os.link(aside, path)  # a fresh lock: give it back to its holder
    except FileExistsError:
        pass  # yet another holder took the key meanwhile; the moved one has lost it
    finally:
        aside.unlink(missing_ok=True)


__all__ = ["FileSystemLockManager"]
