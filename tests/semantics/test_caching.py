"""Caching: a task run whose cache key has a stored result ends Cached without running."""

import datetime
import tempfile
import time
import uuid
from pathlib import Path

from engine import flow, task
from engine.cache_policies import INPUTS, NONE, TASK_SOURCE, task_input_hash
from engine.locking import FileSystemLockManager
from engine.settings import PREFECT_TASKS_REFRESH_CACHE, temporary_settings

from . import _helpers as h
from ._side_effects import record, recorded


@task(cache_key_fn=task_input_hash, cache_expiration=datetime.timedelta(hours=1))
def doubled(key: str, x: int) -> int:
    record(key, x)
    return 2 * x


@task(cache_policy=INPUTS - "key")
def ignores_key(key: str, x: int) -> int:
    record(key, x)
    return x + 1


@task(cache_policy=INPUTS + TASK_SOURCE, refresh_cache=True)
def always_refreshed(key: str, x: int) -> int:
    record(key, x)
    return x


@task(cache_policy=INPUTS, refresh_cache=False)
def never_refreshed(key: str, x: int) -> int:
    record(key, x)
    return x


# Configured policies: the same paths in this process and on the suite's workers.
KEY_DIR = Path(tempfile.gettempdir()) / "celerity-semantics-key-storage"
LOCK_DIR = Path(tempfile.gettempdir()) / "celerity-semantics-locks"
STORED_KEYS = INPUTS.configure(key_storage=KEY_DIR)
SERIALIZED = INPUTS.configure(
    lock_manager=FileSystemLockManager(lock_files_directory=LOCK_DIR),
    isolation_level="SERIALIZABLE",
)


@task(cache_policy=STORED_KEYS)
def keyed_in_storage(key: str, x: int) -> int:
    record(key, x)
    return x * 3


@task(cache_policy=SERIALIZED)
def serialized(key: str) -> str:
    expected = SERIALIZED.compute_key(task_ctx=None, inputs={"key": key}, flow_parameters=None)
    record(key, (LOCK_DIR / f"{expected}.lock").exists())
    time.sleep(0.3)  # long enough for the other runs to queue on the lock
    return key


@flow
def three_at_once(task_fn, key: str):
    futures = [task_fn.submit(key) for _ in range(3)]
    for future in futures:
        future.wait()
    return sorted(future.state.name for future in futures)


@task(cache_policy=NONE)
def never_cached(key: str, x: int) -> int:
    record(key, x)
    return x


@task(
    cache_key_fn=lambda ctx, params: params["tag"], cache_expiration=datetime.timedelta(seconds=-1)
)
def expired_at_once(key: str, tag: str) -> str:
    record(key, tag)
    return tag


@flow
def call_twice(task_fn, key: str, **kwargs):
    first = task_fn(key, return_state=True, **kwargs)
    second = task_fn.submit(key, **kwargs)
    second.wait()
    return first, second.state, second.task_run_id


class TestCacheHits:
    def test_second_call_with_same_inputs_is_cached_and_does_not_run(self, key):
        first, second, second_id = call_twice(doubled, key, x=21)
        assert first.name == "Completed" and first.result() == 42
        assert second.name == "Cached" and second.result() == 42
        assert recorded(key) == [21]
        assert h.names(second_id) == ["Pending", "Running", "Cached"]

    def test_different_inputs_miss_the_cache(self, key):
        salt = uuid.uuid4().int % 1000
        assert doubled(key, salt) == 2 * salt
        assert doubled(key, salt + 1) == 2 * (salt + 1)
        assert recorded(key) == [salt, salt + 1]

    def test_excluded_input_does_not_change_the_key(self, key):
        x = uuid.uuid4().int % 10_000
        assert ignores_key(key, x) == x + 1
        assert ignores_key(key + "-other", x, return_state=True).name == "Cached"
        assert recorded(key) == [x]


class TestConfiguredPolicies:
    """``policy.configure(key_storage=, lock_manager=, isolation_level=)`` is obeyed."""

    def test_records_go_to_the_key_storage_and_serve_later_runs(self, key):
        first, second, _ = call_twice(keyed_in_storage, key, x=7)
        assert (first.name, second.name) == ("Completed", "Cached")
        assert second.result() == 21
        assert recorded(key) == [7]
        expected = STORED_KEYS.compute_key(
            task_ctx=None, inputs={"key": key, "x": 7}, flow_parameters=None
        )
        assert (KEY_DIR / expected).exists()

    def test_serializable_runs_of_one_key_run_once_holding_the_lock(self, key):
        assert three_at_once(serialized, key) == ["Cached", "Cached", "Completed"]
        assert recorded(key) == [True]  # one execution, while its lock file existed


class TestCacheBypass:
    def test_refresh_cache_always_runs(self, key):
        first, second, _ = call_twice(always_refreshed, key, x=1)
        assert (first.name, second.name) == ("Completed", "Completed")
        assert recorded(key) == [1, 1]

    def test_the_refresh_cache_setting_refreshes_tasks_that_do_not_say(self, key):
        """``PREFECT_TASKS_REFRESH_CACHE`` is read when the run starts; a task's own
        ``refresh_cache=False`` wins over it. Inline calls: both run in this process,
        whose settings the block changes, on either runner."""

        @flow
        def twice_inline(key: str):
            return [fn(key, 3, return_state=True).name for fn in (doubled, doubled)] + [
                never_refreshed(key, 4, return_state=True).name for _ in range(2)
            ]

        salt = uuid.uuid4().int % 1000
        with temporary_settings({PREFECT_TASKS_REFRESH_CACHE: True}):
            names = twice_inline(f"{key}-{salt}")
        assert names == ["Completed", "Completed", "Completed", "Cached"]
        assert recorded(f"{key}-{salt}") == [3, 3, 4]

    def test_no_cache_policy_always_runs(self, key):
        first, second, _ = call_twice(never_cached, key, x=5)
        assert (first.name, second.name) == ("Completed", "Completed")
        assert recorded(key) == [5, 5]

    def test_expired_entries_are_not_used(self, key):
        first, second, _ = call_twice(expired_at_once, key, tag=f"t-{uuid.uuid4()}")
        assert (first.name, second.name) == ("Completed", "Completed")
        assert len(recorded(key)) == 2
