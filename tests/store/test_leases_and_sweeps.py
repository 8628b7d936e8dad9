"""What a fleet's store adds: claims, queue progress, flow run leases and the sweep."""

from __future__ import annotations

import uuid

import pytest

from engine.flow_attempts import crash_flow_run
from engine.schemas import FlowRun, TaskRun
from engine.states import Completed, Crashed, Paused, Pending, Running
from engine.store import keys
from engine.store.redis import RedisRunStore
from workers.sweeper import FlowRunSweeper


@pytest.fixture
def store(open_redis_store) -> RedisRunStore:
    return open_redis_store()


def _flow_run(store: RedisRunStore) -> FlowRun:
    run = FlowRun(name="f", state=Pending())
    run.state.state_details.flow_run_id = run.id
    return store.create_flow_run(run)


def _task_run(store: RedisRunStore, flow_run: FlowRun) -> TaskRun:
    run = TaskRun(name="t", flow_run_id=flow_run.id, state=Pending())
    run.state.state_details.task_run_id = run.id
    return store.create_task_run(run)


def _running(store: RedisRunStore, run_id: uuid.UUID, worker: str = "w:1") -> None:
    running = Running()
    running.state_details.worker = worker
    store.propose_state(run_id, running)


def _lose_lease(store: RedisRunStore, run_id: uuid.UUID) -> None:
    store.client.delete(keys.lease(store.prefix, run_id))  # as if its holder died


class TestClaims:
    def test_a_worker_claims_the_runs_nobody_holds(self, store):
        flow_run = _flow_run(store)
        free, held = _task_run(store, flow_run), _task_run(store, flow_run)
        _running(store, held.id, worker="other:2")
        holders = store.prime([free.id, held.id], "me:1", "q", 100.0)
        # the holders before the claim: only the held run had one
        assert holders == {held.id: "other:2"}
        assert store.lease_holder(free.id) == "me:1"
        assert store.lease_holder(held.id) == "other:2"

    def test_the_queue_progress_mark_only_moves_forward(self, store):
        run = _task_run(store, _flow_run(store))
        store.prime([run.id], "me:1", "q", 200.0)
        store.prime([run.id], "me:1", "q", 150.0)
        assert store.queue_progress("q") == 200.0
        assert store.queue_progress("another") == 0.0

    def test_a_final_state_drops_the_lease(self, store):
        run = _task_run(store, _flow_run(store))
        _running(store, run.id)
        completed = Completed()
        completed.state_details.task_run_id = run.id
        store.propose_state(run.id, completed)
        assert store.lease_holder(run.id) is None


class TestFlowRunLeases:
    def test_a_running_flow_run_is_leased_until_final_paused_included(self, store):
        flow_run = _flow_run(store)
        _running(store, flow_run.id)
        assert store.lease_holder(flow_run.id) is not None
        store.propose_state(flow_run.id, Paused())
        assert store.lease_holder(flow_run.id) is not None
        assert store.lapsed_flow_runs() == []
        store.propose_state(flow_run.id, Completed())
        assert store.lease_holder(flow_run.id) is None
        assert store.client.scard(keys.active_flow_runs(store.prefix)) == 0

    def test_a_lapsed_flow_run_is_found_and_crashed_once(self, open_redis_store):
        first, second = open_redis_store(), open_redis_store()
        flow_run = _flow_run(first)
        _running(first, flow_run.id)
        _lose_lease(first, flow_run.id)
        assert [run.id for run in second.lapsed_flow_runs()] == [flow_run.id]
        crashed = Crashed(message="lost")
        assert first.propose_if_unleased(flow_run.id, crashed) is True
        assert second.propose_if_unleased(flow_run.id, Crashed(message="lost")) is False
        assert first.read_flow_run(flow_run.id).state.id == crashed.id
        assert second.lapsed_flow_runs() == []

    def test_a_flow_run_whose_lease_is_held_is_not_crashed(self, store):
        flow_run = _flow_run(store)
        _running(store, flow_run.id)
        assert store.propose_if_unleased(flow_run.id, Crashed(message="lost")) is False
        assert store.read_flow_run(flow_run.id).state.is_running()


class TestSweep:
    def test_crashing_a_flow_run_ends_its_unfinished_task_runs_only(self, store):
        flow_run = _flow_run(store)
        _running(store, flow_run.id)
        done, running, waiting = (_task_run(store, flow_run) for _ in range(3))
        _running(store, done.id)
        store.propose_state(done.id, Completed())
        _running(store, running.id)
        _lose_lease(store, flow_run.id)
        assert crash_flow_run(store, store.read_flow_run(flow_run.id), "its process died")
        states = {run.id: run.state for run in store.read_task_runs(flow_run.id)}
        assert states[done.id].is_completed()
        assert states[running.id].is_crashed() and "its process died" in states[running.id].message
        assert states[waiting.id].is_crashed()

    def test_of_two_sweepers_exactly_one_ends_a_lapsed_flow_run(self, open_redis_store):
        first, second = open_redis_store(), open_redis_store()
        flow_run = _flow_run(first)
        _running(first, flow_run.id)
        _lose_lease(first, flow_run.id)
        ended = FlowRunSweeper(first).sweep_once() + FlowRunSweeper(second).sweep_once()
        assert ended == [flow_run.id]
        state = first.read_flow_run(flow_run.id).state
        assert state.is_crashed()
        assert "runs retry" in state.message


class TestTakingSubmittedRuns:
    def _taken(self, run_id: uuid.UUID, coordinator: str) -> Pending:
        state = Pending(message=f"Taken by coordinator {coordinator}.")
        state.state_details.flow_run_id = run_id
        state.state_details.worker = coordinator
        return state

    def test_one_coordinator_takes_a_run_and_a_duplicate_delivery_is_refused(
        self, open_redis_store
    ):
        first, second = open_redis_store(), open_redis_store()
        flow_run = _flow_run(first)
        assert first.propose_if_unleased(flow_run.id, self._taken(flow_run.id, "c:1"))
        assert first.lease_holder(flow_run.id) == "c:1"
        assert not second.propose_if_unleased(flow_run.id, self._taken(flow_run.id, "c:2"))

    def test_a_run_whose_coordinator_died_before_starting_it_is_swept(self, store):
        flow_run = _flow_run(store)
        store.propose_if_unleased(flow_run.id, self._taken(flow_run.id, "c:1"))
        _lose_lease(store, flow_run.id)
        assert FlowRunSweeper(store).sweep_once() == [flow_run.id]
        assert store.read_flow_run(flow_run.id).state.is_crashed()
