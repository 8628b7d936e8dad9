"""Deferred task runs: parked in Redis, released by the step that finishes their upstreams."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from engine.schemas import FlowRun, TaskRun
from engine.states import Completed, Failed, NotReady, Pending, Running, State
from engine.store.redis import RedisRunStore


@pytest.fixture
def store(store_redis_url: str, key_prefix: str) -> Iterator[RedisRunStore]:
    opened = RedisRunStore(store_redis_url, prefix=key_prefix, retention_seconds=600)
    yield opened
    opened.close()


@pytest.fixture
def released(store: RedisRunStore) -> Iterator[list[dict]]:
    caught: list[dict] = []
    store.release_handler = lambda envelopes: caught.extend(json.loads(e) for e in envelopes)
    yield caught
    store.release_handler = None


def _task_run(store: RedisRunStore, flow_run: FlowRun) -> TaskRun:
    run_id = uuid.uuid4()
    state = Pending()
    state.state_details.task_run_id = run_id
    return store.create_task_run(TaskRun(id=run_id, name="t", flow_run_id=flow_run.id, state=state))


def _finish(store: RedisRunStore, run: TaskRun, final: State) -> None:
    running = Running()
    running.state_details.worker = "test:1"
    store.propose_state(run.id, running)
    store.propose_state(run.id, final)


@pytest.fixture
def flow_run(store: RedisRunStore) -> FlowRun:
    return store.create_flow_run(FlowRun(name="f", state=Pending()))


class TestDeferral:
    def test_released_when_the_last_upstream_completes(self, store, flow_run, released):
        # Given a downstream parked behind two running upstreams
        first, second, down = (_task_run(store, flow_run) for _ in range(3))
        waiting = store.defer(
            down.id, json.dumps({"run": str(down.id)}), [(first.id, False), (second.id, False)]
        )
        assert waiting == 2
        # When one completes, nothing is released yet
        _finish(store, first, Completed())
        assert released == []
        # When the other completes, the envelope comes out exactly once
        _finish(store, second, Completed())
        assert released == [{"run": str(down.id)}]
        assert store.cancel_deferred(down.id) is False  # already released

    def test_not_released_by_a_failed_upstream(self, store, flow_run, released):
        up, down = _task_run(store, flow_run), _task_run(store, flow_run)
        assert store.defer(down.id, "{}", [(up.id, False)]) == 1
        _finish(store, up, Failed())
        assert released == []
        # The coordinator takes it back to mark it NotReady
        assert store.cancel_deferred(down.id) is True

    def test_released_by_a_failure_it_allows(self, store, flow_run, released):
        up, down = _task_run(store, flow_run), _task_run(store, flow_run)
        assert store.defer(down.id, '{"x": 1}', [(up.id, True)]) == 1
        _finish(store, up, Failed())
        assert released == [{"x": 1}]

    def test_refused_when_an_upstream_already_failed(self, store, flow_run, released):
        up, down = _task_run(store, flow_run), _task_run(store, flow_run)
        store.propose_state(up.id, NotReady())
        assert store.defer(down.id, "{}", [(up.id, False)]) == -1

    def test_sent_at_once_when_every_upstream_already_completed(self, store, flow_run, released):
        up, down = _task_run(store, flow_run), _task_run(store, flow_run)
        _finish(store, up, Completed())
        assert store.defer(down.id, "{}", [(up.id, False)]) == 0
