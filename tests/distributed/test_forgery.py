"""Forged values on a real fleet: a worker runs nothing that no key holder signed.

Someone who can write to Redis overwrites an upstream's result (stored, or
carried inline in the run store) with a pickle that would run code. The
downstream task run must end Failed, naming the result and the reason, and the
pickle must never be loaded: its ``__reduce__`` would create a marker file.
"""

from __future__ import annotations

import base64
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine import flow, task
from engine.results import INLINE, storage_for_url
from engine.signing import Signer
from engine.store import get_store, keys

from .fleet import Fleet, session_fleet, use_broker

pytestmark = pytest.mark.faults

ATTACKER_KEY = "the-attackers-own-key-0123456789"


class MarkerOnUnpickle:
    """Creates a file when unpickled: proof that the forged payload ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def forgery(marker: str, signed_by_attacker: bool) -> bytes:
    """A pickle that creates ``marker`` when loaded, unsigned or signed with another key."""
    evil = pickle.dumps(MarkerOnUnpickle(marker))
    return Signer(ATTACKER_KEY).sign(evil) if signed_by_attacker else evil


@task
def produce_large() -> str:
    return "v" * 4000  # above the inline limit: stored in Redis under its own key


@task
def produce_small() -> int:
    return 7  # carried inline, inside the task run's state in the run store


@task
def consume(value) -> str:
    return f"consumed {value!r}"


@flow
def overwritten_stored_result(marker: str, signed_by_attacker: bool) -> str:
    upstream = produce_large.submit()
    upstream.wait()
    ref = upstream.state.result_ref
    # The attacker overwrites the stored payload between the two task runs
    storage_for_url(ref.storage).write_bytes(ref.key, forgery(marker, signed_by_attacker))
    return consume.submit(upstream).result()


@flow
def forged_inline_result(marker: str, signed_by_attacker: bool) -> str:
    upstream = produce_small.submit()
    upstream.wait()
    ref = upstream.state.result_ref
    assert ref.storage == INLINE
    # The attacker rewrites the upstream's state in the run store: a new inline payload
    forged = base64.b64encode(forgery(marker, signed_by_attacker)).decode()
    store = get_store()
    client = redis.Redis.from_url(os.environ["CELERITY_BROKER_URL"])
    try:
        key = keys.run(store.prefix, upstream.task_run_id)
        client.set(key, client.get(key).replace(ref.key.encode(), forged.encode()))
    finally:
        client.close()
    return consume.submit(upstream).result()


@pytest.fixture(scope="module")
def forgery_fleet(redis_server, tmp_path_factory) -> Iterator[Fleet]:
    with session_fleet(
        redis_server, tmp_path_factory, "forgery-fleet", workers=1, concurrency=1
    ) as fleet:
        yield fleet


@pytest.fixture
def on_fleet(forgery_fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    use_broker(monkeypatch, forgery_fleet.env["CELERITY_BROKER_URL"])
    return forgery_fleet


def _task_runs_by_name(flow_run_id) -> dict:
    runs = get_store().read_task_runs(flow_run_id)
    return {run.task_key.rpartition(".")[2]: run for run in runs}


@pytest.mark.parametrize("signed_by_attacker", [False, True], ids=["unsigned", "attackers-key"])
class TestForgedResults:
    def test_an_overwritten_stored_result_fails_the_reader_unloaded(
        self, on_fleet: Fleet, tmp_path: Path, signed_by_attacker: bool
    ) -> None:
        marker = tmp_path / "stored-result-was-unpickled"
        # Given an upstream result in Redis overwritten with a forged pickle,
        # when a task run on a worker takes it as its argument
        state = overwritten_stored_result(str(marker), signed_by_attacker, return_state=True)
        # Then the reading task run ends Failed, naming the result and the key setting
        assert state.is_failed(), on_fleet.log_tail()
        runs = _task_runs_by_name(state.state_details.flow_run_id)
        assert runs["produce_large"].state.is_completed()
        failed = runs["consume"].state
        assert failed.is_failed(), (failed, on_fleet.log_tail())
        stored_key = runs["produce_large"].state.result_ref.key
        assert f"Result {stored_key} in redis://" in failed.message
        assert "CELERITY_SIGNING_KEY" in failed.message
        if signed_by_attacker:
            assert "failed signature verification: tampered" in failed.message
        # And the forged pickle never ran, and the worker lives on
        assert not marker.exists()
        assert on_fleet.group.exited() == []

    def test_a_forged_inline_result_fails_the_reader_unloaded(
        self, on_fleet: Fleet, tmp_path: Path, signed_by_attacker: bool
    ) -> None:
        marker = tmp_path / "inline-result-was-unpickled"
        # Given an upstream whose inline result was replaced in the run store
        state = forged_inline_result(str(marker), signed_by_attacker, return_state=True)
        # Then the reading task run ends Failed with the reason
        assert state.is_failed(), on_fleet.log_tail()
        failed = _task_runs_by_name(state.state_details.flow_run_id)["consume"].state
        assert failed.is_failed(), (failed, on_fleet.log_tail())
        assert "An inline result" in failed.message
        assert "CELERITY_SIGNING_KEY" in failed.message
        # And the forged pickle never ran
        assert not marker.exists()
        assert on_fleet.group.exited() == []


class TestNoKeyNoFleet:
    def test_a_producer_without_a_key_refuses_to_submit(
        self, own_redis, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from engine.exceptions import ConfigurationError
        from workers.producer import submit_flow_run

        # Given a producer with the broker URL but no signing key
        monkeypatch.delenv("CELERITY_SIGNING_KEY")
        use_broker(monkeypatch, own_redis.url)
        # When it submits a flow run, then it refuses, saying how to make a key
        with pytest.raises(ConfigurationError, match="celerity key generate"):
            submit_flow_run(overwritten_stored_result, {"marker": "-", "signed_by_attacker": False})
