"""ResultStore (engine.results): keyed records, where they live, and their locks."""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_store import fresh_process_store

from engine.exceptions import ConfigurationError, MissingResult
from engine.filesystems import LocalFileSystem, NullFileSystem
from engine.locking import MemoryLockManager
from engine.results import (
    ResultRecord,
    ResultStore,
    get_default_result_storage,
    get_result_store,
    result_store_for_task,
)
from engine.serializers import JSONSerializer
from engine.states import Completed
from engine.transactions import IsolationLevel


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    with fresh_process_store():
        yield


def _in(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


class TestRecordsInTheRunStore:
    """Without a storage, records are the run store's cache entries (task caching's key space)."""

    def test_a_written_record_is_read_back(self):
        store = ResultStore()
        assert not store.exists("k")
        store.write({"rows": 3}, key="k")
        record = store.read("k")
        assert store.exists("k")
        assert isinstance(record, ResultRecord) and record.result == {"rows": 3}
        assert record.metadata.storage_key == "k"

    def test_an_expired_record_is_gone(self):
        store = ResultStore()
        store.write("old", key="k", expiration=_in(-1))
        assert not store.exists("k")
        with pytest.raises(MissingResult):
            store.read("k")

    def test_a_final_state_is_recorded_as_it_is(self):
        from engine.store import get_store

        state = Completed(data=42)
        ResultStore().write(state, key="k")
        assert get_store().read_cache("k") is state
        assert ResultStore().read_state("k").result() == 42

    def test_a_record_without_a_key_gets_a_fresh_one(self):
        store = ResultStore()
        record = store.create_result_record("value")
        store.persist_result_record(record)
        assert store.read(str(record.metadata.storage_key)).result == "value"


class TestRecordsInAStorage:
    def test_a_record_is_a_file_named_by_its_key(self, tmp_path: Path):
        store = ResultStore(result_storage=LocalFileSystem(basepath=tmp_path))
        store.write({"foo": "bar"}, key="nightly")
        document = json.loads((tmp_path / "nightly").read_bytes())
        assert document["metadata"]["storage_key"] == "nightly" and "signature" in document
        assert store.read("nightly") == store.read("nightly")
        assert store.read("nightly").result == {"foo": "bar"}

    def test_a_directory_path_is_a_storage(self, tmp_path: Path):
        ResultStore(result_storage=str(tmp_path)).write(1, key="k")
        assert ResultStore(result_storage=tmp_path).read("k").result == 1

    def test_a_json_store_keeps_its_records_readable(self, tmp_path: Path):
        store = ResultStore(result_storage=tmp_path, serializer="json")
        store.write({"rows": [1, 2]}, key="k")
        assert json.loads((tmp_path / "k").read_bytes())["result"] == {"rows": [1, 2]}
        assert isinstance(store.read("k").metadata.serializer, JSONSerializer)

    def test_expiration_is_kept_with_the_record(self, tmp_path: Path):
        store = ResultStore(result_storage=tmp_path)
        store.write("fresh", key="fresh", expiration=_in(3600))
        store.write("stale", key="stale", expiration=_in(-1))
        assert store.exists("fresh") and not store.exists("stale")
        with pytest.raises(MissingResult, match="expired"):
            store.read("stale")

    def test_metadata_can_live_apart(self, tmp_path: Path):
        store = ResultStore(result_storage=tmp_path / "results", metadata_storage=tmp_path / "keys")
        store.write("v", key="k", expiration=_in(-1))
        assert (tmp_path / "keys" / "k").exists() and (tmp_path / "results" / "k").exists()
        assert not store.exists("k")  # the metadata says it expired

    def test_a_null_metadata_storage_hides_records(self, tmp_path: Path):
        store = ResultStore(result_storage=tmp_path, metadata_storage=NullFileSystem())
        store.write("v", key="k")
        assert (tmp_path / "k").exists() and not store.exists("k")

    def test_a_state_keeps_its_value_and_cache_expiration(self, tmp_path: Path):
        state = Completed(data=[1, 2])
        state.state_details.cache_expiration = _in(3600)
        store = ResultStore(result_storage=tmp_path)
        store.write(state, key="k")
        cached = store.read_state("k")
        assert cached.result() == [1, 2]
        assert cached.state_details.cache_expiration == state.state_details.cache_expiration
        assert store.read_state("missing") is None


class TestLocks:
    def test_serializable_needs_a_lock_manager(self):
        assert ResultStore().supports_isolation_level(IsolationLevel.READ_COMMITTED)
        assert not ResultStore().supports_isolation_level(IsolationLevel.SERIALIZABLE)
        assert ResultStore(lock_manager=MemoryLockManager()).supports_isolation_level(
            "SERIALIZABLE"
        )
        with pytest.raises(ConfigurationError, match="no lock manager"):
            ResultStore().acquire_lock("k")

    def test_another_holder_cannot_write_a_locked_record(self):
        store = ResultStore(lock_manager=MemoryLockManager())
        assert store.acquire_lock("k", holder="owner")
        with pytest.raises(RuntimeError, match="locked by another holder"):
            store.write("intruder", key="k", holder="someone-else")
        store.write("mine", key="k", holder="owner")
        store.release_lock("k", holder="owner")
        assert store.read("k").result == "mine"

    def test_a_reader_waits_for_the_writer_to_release(self):
        store = ResultStore(lock_manager=MemoryLockManager())
        store.acquire_lock("k", holder="writer")
        read: list[str] = []
        reader = threading.Thread(target=lambda: read.append(store.read("k").result))
        reader.start()
        store.write("committed", key="k", holder="writer")
        store.release_lock("k", holder="writer")
        reader.join(timeout=30)
        assert read == ["committed"]

    def test_the_default_holder_is_this_thread(self):
        store = ResultStore(lock_manager=MemoryLockManager())
        store.acquire_lock("k")
        assert store.is_lock_holder("k")
        other: list[bool] = []
        thread = threading.Thread(target=lambda: other.append(store.is_lock_holder("k")))
        thread.start()
        thread.join()
        assert other == [False]
        store.release_lock("k")
        assert not store.is_locked("k")


class TestStoresForRuns:
    def test_the_process_store_locks_in_memory_when_embedded(self):
        assert get_result_store().lock_manager is MemoryLockManager()

    def test_a_task_store_follows_the_task_and_its_cache_policy(self, tmp_path: Path):
        from engine import task
        from engine.cache_policies import INPUTS

        @task(
            result_storage=tmp_path / "results",
            result_serializer="json",
            cache_policy=INPUTS.configure(key_storage=tmp_path / "keys"),
        )
        def produce(x):
            return x

        store = result_store_for_task(produce, ResultStore(lock_manager=MemoryLockManager()))
        assert store.result_storage == LocalFileSystem(tmp_path / "results")
        assert store.metadata_storage == LocalFileSystem(tmp_path / "keys")
        assert isinstance(store.serializer, JSONSerializer)
        assert store.lock_manager is MemoryLockManager()  # from the enclosing store

    def test_a_task_policy_must_name_its_own_lock_manager(self):
        from engine import task
        from engine.cache_policies import INPUTS

        @task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE"))
        def bare(x):
            return x

        @task(cache_policy=INPUTS.configure(lock_manager=MemoryLockManager()))
        def locked(x):
            return x

        assert result_store_for_task(bare).lock_manager is None
        assert result_store_for_task(locked).lock_manager is MemoryLockManager()

    def test_a_flow_store_follows_the_flow(self, tmp_path: Path):
        from engine import flow

        @flow(result_storage=tmp_path, result_serializer="json")
        def pipeline():
            pass

        store = ResultStore().update_for_flow(pipeline)
        assert store.result_storage == LocalFileSystem(tmp_path)
        assert store.serializer == JSONSerializer()


class TestLocalFileSystem:
    def test_paths_are_read_and_written_as_they_are(self, tmp_path: Path):
        fs = LocalFileSystem(basepath=tmp_path)
        fs.write_path("a/b.txt", b"hello")
        assert (tmp_path / "a" / "b.txt").read_bytes() == b"hello"
        assert fs.read_path("a/b.txt") == b"hello"
        with pytest.raises(ValueError, match="does not exist"):
            fs.read_path("missing")

    def test_a_saved_storage_is_loaded_by_name(self, tmp_path: Path):
        fs = LocalFileSystem(basepath=tmp_path)
        document_id = fs.save("results-for-test")
        assert LocalFileSystem.load("results-for-test") is fs
        assert ResultStore(result_storage=fs).result_storage_block_id == document_id
        with pytest.raises(ValueError, match="already saved"):
            LocalFileSystem(basepath=tmp_path / "other").save("results-for-test")

    def test_the_default_storage_is_memory_when_embedded(self):
        assert get_default_result_storage().url == "memory://"

    def test_a_saved_storage_named_by_the_setting_is_the_default(self, tmp_path: Path):
        from engine.settings import PREFECT_DEFAULT_RESULT_STORAGE_BLOCK, temporary_settings

        fs = LocalFileSystem(basepath=tmp_path)
        fs.save("default-for-test", overwrite=True)
        named = {PREFECT_DEFAULT_RESULT_STORAGE_BLOCK: "local-file-system/default-for-test"}
        with temporary_settings(named):
            assert get_default_result_storage() is fs
        assert get_default_result_storage().url == "memory://"

    def test_an_unknown_storage_name_is_a_clear_error(self):
        from engine.settings import PREFECT_DEFAULT_RESULT_STORAGE_BLOCK, temporary_settings

        with temporary_settings({PREFECT_DEFAULT_RESULT_STORAGE_BLOCK: "local-file-system/nope"}):
            with pytest.raises(ValueError, match="No storage is saved as 'local-file-system/nope'"):
                get_default_result_storage()
