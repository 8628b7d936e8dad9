"""Lock managers (engine.locking): one contract, run against memory, files and Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.locking import FileSystemLockManager, LockManager, MemoryLockManager, RedisLockManager

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["memory", "filesystem", "redis"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LockManager]:
    if request.param == "memory":
        yield MemoryLockManager()
    elif request.param == "filesystem":
        yield FileSystemLockManager(lock_files_directory=tmp_path / "locks")
    else:
        redis_manager = RedisLockManager(url=request.getfixturevalue("redis_url"))
        yield redis_manager
        redis_manager.close()


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    return f"lock-{request.node.name}"


class TestHolding:
    def test_a_free_key_is_taken_and_released(self, manager, key):
        assert not manager.is_locked(key)
        assert manager.acquire_lock(key, holder="a")
        assert manager.is_locked(key)
        assert manager.is_lock_holder(key, "a") and not manager.is_lock_holder(key, "b")
        manager.release_lock(key, holder="a")
        assert not manager.is_locked(key)

    def test_the_holder_may_take_it_again(self, manager, key):
        assert manager.acquire_lock(key, holder="a")
        assert manager.acquire_lock(key, holder="a", acquire_timeout=0)
        manager.release_lock(key, holder="a")

    def test_another_holder_waits_then_gives_up(self, manager, key):
        manager.acquire_lock(key, holder="a")
        assert manager.acquire_lock(key, holder="b", acquire_timeout=0.1) is False
        assert manager.is_lock_holder(key, "a")
        manager.release_lock(key, holder="a")

    def test_only_the_holder_releases(self, manager, key):
        manager.acquire_lock(key, holder="a")
        with pytest.raises(ValueError, match="No lock held by b"):
            manager.release_lock(key, holder="b")
        manager.release_lock(key, holder="a")
        with pytest.raises(ValueError):
            manager.release_lock(key, holder="a")

    def test_a_hold_timeout_lets_the_lock_lapse(self, manager, key):
        manager.acquire_lock(key, holder="a", hold_timeout=0.3)
        # b waits for the lapse, however long the machine takes to get there
        assert manager.acquire_lock(key, holder="b", acquire_timeout=30)
        assert manager.is_lock_holder(key, "b") and not manager.is_lock_holder(key, "a")
        manager.release_lock(key, holder="b")


class TestWaiting:
    def test_wait_for_lock_reports_whether_the_key_came_free(self, manager, key):
        manager.acquire_lock(key, holder="a")
        assert manager.wait_for_lock(key, timeout=0.1) is False
        manager.release_lock(key, holder="a")
        assert manager.wait_for_lock(key, timeout=5) is True

    def test_a_waiting_thread_gets_the_lock_when_it_is_released(self, manager, key):
        manager.acquire_lock(key, holder="a")
        got: list[bool] = []
        waiter = threading.Thread(target=lambda: got.append(manager.acquire_lock(key, "b")))
        waiter.start()
        assert manager.is_lock_holder(key, "a")  # b is still waiting
        manager.release_lock(key, holder="a")
        waiter.join(timeout=30)
        assert got == [True] and manager.is_lock_holder(key, "b")
        manager.release_lock(key, holder="b")

    def test_tasks_of_one_loop_take_turns(self, manager, key):
        order: list[str] = []
        asyncio.run(self._take_turns(manager, key, order))
        assert order == ["first holds", "first releases", "second holds"]

    @staticmethod
    async def _take_turns(manager: LockManager, key: str, order: list[str]) -> None:
        first_holds = asyncio.Event()
        release_first = asyncio.Event()

        async def first() -> None:
            await manager.aacquire_lock(key, holder="first")
            order.append("first holds")
            first_holds.set()
            await release_first.wait()
            order.append("first releases")
            manager.release_lock(key, holder="first")

        async def second() -> None:
            await first_holds.wait()
            acquiring = asyncio.ensure_future(manager.aacquire_lock(key, holder="second"))
            assert await manager.await_for_lock(key, timeout=0.1) is False
            release_first.set()
            assert await acquiring
            order.append("second holds")
            manager.release_lock(key, holder="second")

        await asyncio.gather(first(), second())


HOLD_IN_CHILD = """
import sys
from engine.locking import FileSystemLockManager, RedisLockManager
kind, where, key = sys.argv[1:4]
manager = (
    FileSystemLockManager(lock_files_directory=where)
    if kind == "filesystem"
    else RedisLockManager(url=where)
)
print(manager.acquire_lock(key, holder="child", acquire_timeout=float(sys.argv[4])))
"""


def _acquire_in_another_process(kind: str, where: str, key: str, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, "-c", HOLD_IN_CHILD, kind, where, key, str(timeout)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


class TestAcrossProcesses:
    @pytest.mark.parametrize("kind", ["filesystem", "redis"])
    def test_another_process_is_kept_out_until_release(self, kind, key, tmp_path, request):
        where = str(tmp_path) if kind == "filesystem" else request.getfixturevalue("redis_url")
        manager = (
            FileSystemLockManager(lock_files_directory=where)
            if kind == "filesystem"
            else RedisLockManager(url=where)
        )
        manager.acquire_lock(key, holder="parent")
        assert _acquire_in_another_process(kind, where, key, 0.2) == "False"
        manager.release_lock(key, holder="parent")
        assert _acquire_in_another_process(kind, where, key, 5) == "True"
        assert manager.is_lock_holder(key, "child")
        if isinstance(manager, RedisLockManager):
            manager.close()


class TestIdentity:
    def test_every_memory_manager_is_the_process_one(self):
        assert MemoryLockManager() is MemoryLockManager()

    def test_file_and_redis_managers_compare_by_where_they_lock(self, tmp_path):
        assert FileSystemLockManager(tmp_path) == FileSystemLockManager(str(tmp_path))
        assert RedisLockManager(url="redis://h:1/0") == RedisLockManager(url="redis://h:1/0")
        assert RedisLockManager(url="redis://h:1/0") != RedisLockManager(url="redis://h:1/1")

    def test_a_redis_manager_does_not_show_its_password(self):
        assert "secret" not in repr(RedisLockManager(url="redis://:secret@h:1/0"))

    def test_every_manager_meets_the_protocol(self, tmp_path):
        for manager in (
            MemoryLockManager(),
            FileSystemLockManager(tmp_path),
            RedisLockManager(url="redis://h:1/0"),
        ):
            assert isinstance(manager, LockManager)


DIE_HOLDING = """
import os, sys
from engine.locking import RedisLockManager
manager = RedisLockManager(url=sys.argv[1], lease_seconds=2.0)
assert manager.acquire_lock(sys.argv[2], holder="doomed")
os._exit(0)  # dies holding the lock, as a SIGKILLed worker would
"""


class TestRedisLeases:
    def test_a_lock_held_by_a_live_process_is_renewed_past_its_lease(self, redis_url, key):
        holder = RedisLockManager(url=redis_url, lease_seconds=0.6)
        other = RedisLockManager(url=redis_url)
        try:
            holder.acquire_lock(key, holder="alive")
            # Several leases long: only renewal keeps it held that long.
            assert other.acquire_lock(key, holder="other", acquire_timeout=2.0) is False
            holder.release_lock(key, holder="alive")
            assert other.acquire_lock(key, holder="other", acquire_timeout=5.0)
            other.release_lock(key, holder="other")
        finally:
            holder.close()
            other.close()

    def test_a_lock_whose_holder_died_lapses_within_a_lease(self, redis_url, key):
        subprocess.run(
            [sys.executable, "-c", DIE_HOLDING, redis_url, key], cwd=ROOT, timeout=60, check=True
        )
        manager = RedisLockManager(url=redis_url)
        try:
            assert manager.is_locked(key)
            assert manager.acquire_lock(key, holder="survivor", acquire_timeout=30)
            manager.release_lock(key, holder="survivor")
        finally:
            manager.close()


class TestLapsedLockFiles:
    def test_breaking_a_lapsed_lock_spares_a_fresh_one_taken_meanwhile(self, tmp_path, key):
        from engine.locking.filesystem import _break_lapsed

        manager = FileSystemLockManager(lock_files_directory=tmp_path)
        manager.acquire_lock(key, holder="old", hold_timeout=0.0)
        lapsed_text = (tmp_path / f"{key}.lock").read_text()
        # Given another process broke the lapsed lock and took the key since we read it
        (tmp_path / f"{key}.lock").unlink()
        assert manager.acquire_lock(key, holder="fresh")
        # When we break what we saw lapse, the fresh lock survives
        _break_lapsed(tmp_path / f"{key}.lock", lapsed_text)
        assert manager.is_lock_holder(key, "fresh")
        assert [path.name for path in tmp_path.iterdir()] == [f"{key}.lock"]

    def test_a_lapsed_lock_file_is_taken_over(self, tmp_path, key):
        manager = FileSystemLockManager(lock_files_directory=tmp_path)
        manager.acquire_lock(key, holder="old", hold_timeout=0.0)
        assert manager.acquire_lock(key, holder="new", acquire_timeout=0)
        assert manager.is_lock_holder(key, "new")
