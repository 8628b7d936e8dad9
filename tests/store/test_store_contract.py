"""The run store contract: one suite, run unchanged against every store.

``store`` is parametrised over the in-memory store and the Redis store (a real
redis-server). A behaviour belongs here when every store must share it.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from engine.exceptions import ObjectAlreadyExists, ObjectNotFound
from engine.orchestration import SetStateStatus
from engine.results import ResultRef
from engine.schemas import FlowRun, RunLog, TaskRun
from engine.states import (
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateDetails,
    now,
)
from engine.store.base import RunStore

StoreFactory = Callable[[], RunStore]
StateMaker = Callable[..., State[Any]]

ACCEPT = SetStateStatus.ACCEPT
REJECT = SetStateStatus.REJECT


def new_flow_run(store: RunStore, **fields: Any) -> FlowRun:
    fields.setdefault("state", Pending())
    fields.setdefault("name", "a-flow-run")
    return store.create_flow_run(FlowRun(flow_name="a-flow", **fields))


def new_task_run(store: RunStore, flow_run: FlowRun | None = None, **fields: Any) -> TaskRun:
    fields.setdefault("state", Pending())
    fields.setdefault("name", "a-task-run")
    flow_run_id = flow_run.id if flow_run else None
    return store.create_task_run(TaskRun(flow_run_id=flow_run_id, **fields))


class TestFlowRuns:
    def test_created_flow_run_reads_back_unchanged(self, store: RunStore) -> None:
        created = new_flow_run(store, parameters={"x": 1, "y": [1, "a"]}, tags=["t"])

        read = store.read_flow_run(created.id)

        assert read == created
        assert read.state is not None and read.state.is_pending()

    def test_unknown_flow_run_is_not_found(self, store: RunStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.read_flow_run(uuid.uuid4())

    def test_a_task_run_id_is_not_a_flow_run(self, store: RunStore) -> None:
        task_run = new_task_run(store)
        with pytest.raises(ObjectNotFound):
            store.read_flow_run(task_run.id)

    def test_duplicate_create_is_rejected_and_keeps_the_original(self, store: RunStore) -> None:
        original = new_flow_run(store)

        with pytest.raises(ObjectAlreadyExists):
            store.create_flow_run(original.model_copy(update={"name": "impostor"}))

        assert store.read_flow_run(original.id).name == "a-flow-run"
        assert store.read_state_history(original.id) == [original.state]

    def test_list_is_newest_first_and_limited(self, store: RunStore) -> None:
        runs = [new_flow_run(store) for _ in range(5)]

        listed = store.list_flow_runs(limit=3)

        assert [r.id for r in listed] == [r.id for r in reversed(runs)][:3]
        assert [r.id for r in store.list_flow_runs()] == [r.id for r in reversed(runs)]

    def test_list_is_empty_without_flow_runs(self, store: RunStore) -> None:
        assert store.list_flow_runs() == []


class TestTaskRuns:
    def test_created_task_run_reads_back_unchanged(self, store: RunStore) -> None:
        flow_run = new_flow_run(store)
        created = new_task_run(store, flow_run, task_key="mod.fn", dynamic_key="3")

        assert store.read_task_run(created.id) == created

    def test_unknown_task_run_is_not_found(self, store: RunStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.read_task_run(uuid.uuid4())

    def test_a_flow_run_id_is_not_a_task_run(self, store: RunStore) -> None:
        flow_run = new_flow_run(store)
        with pytest.raises(ObjectNotFound):
            store.read_task_run(flow_run.id)

    def test_duplicate_create_is_rejected(self, store: RunStore) -> None:
        task_run = new_task_run(store)
        with pytest.raises(ObjectAlreadyExists):
            store.create_task_runs([task_run])

    def test_task_runs_of_a_flow_run_come_back_in_creation_order(self, store: RunStore) -> None:
        flow_run, other = new_flow_run(store), new_flow_run(store)
        first = new_task_run(store, flow_run, name="first")
        new_task_run(store, other, name="elsewhere")
        rest = store.create_task_runs(
            [TaskRun(name=f"n{i}", flow_run_id=flow_run.id) for i in range(3)]
        )

        names = [run.name for run in store.read_task_runs(flow_run.id)]

        assert names == [first.name] + [run.name for run in rest]

    def test_a_flow_run_without_task_runs_has_none(self, store: RunStore) -> None:
        assert store.read_task_runs(new_flow_run(store).id) == []

    def test_a_thousand_task_runs_in_one_call(self, store: RunStore) -> None:
        flow_run = new_flow_run(store)
        batch = [
            TaskRun(name=f"map-{i}", flow_run_id=flow_run.id, dynamic_key=str(i), state=Pending())
            for i in range(1000)
        ]

        created = store.create_task_runs(batch)

        assert [run.id for run in created] == [run.id for run in batch]
        assert [run.id for run in store.read_task_runs(flow_run.id)] == [r.id for r in batch]
        assert store.read_task_run(batch[999].id).dynamic_key == "999"
        assert store.read_state_history(batch[500].id) == [batch[500].state]


class TestStateTransitions:
    def test_pending_to_running_is_accepted(self, store: RunStore) -> None:
        run = new_task_run(store)
        running = Running()

        result = store.propose_state(run.id, running)

        assert result.status == ACCEPT
        assert result.state == running
        assert store.read_task_run(run.id).state == running

    def test_a_second_running_is_rejected_with_the_current_state(self, store: RunStore) -> None:
        # Given a run that one attempt already moved to Running
        run = new_task_run(store)
        first = Running()
        store.propose_state(run.id, first)

        # When a duplicate delivery proposes Running again
        result = store.propose_state(run.id, Running())

        # Then it is rejected and told which state holds
        assert result.status == REJECT
        assert result.state == first
        assert result.reason

    def test_running_to_retrying_is_accepted(self, store: RunStore) -> None:
        run = new_task_run(store)
        store.propose_state(run.id, Running())

        assert store.propose_state(run.id, Retrying()).status == ACCEPT

    @pytest.mark.parametrize("final", [Completed, Failed, Crashed, Cancelled])
    @pytest.mark.parametrize("after", [Running, Pending, Completed, Failed])
    def test_nothing_follows_a_final_state(
        self, store: RunStore, final: StateMaker, after: StateMaker
    ) -> None:
        run = new_task_run(store)
        store.propose_state(run.id, Running())
        final_state = final()
        store.propose_state(run.id, final_state)

        result = store.propose_state(run.id, after())

        assert result.status == REJECT
        assert result.state == final_state
        assert store.read_task_run(run.id).state == final_state

    def test_force_overrides_a_final_state(self, store: RunStore) -> None:
        run = new_flow_run(store)
        store.propose_state(run.id, Running())
        store.propose_state(run.id, Failed())
        again = Scheduled()

        result = store.propose_state(run.id, again, force=True)

        assert result.status == ACCEPT
        assert store.read_flow_run(run.id).state == again

    def test_running_before_the_scheduled_time_waits(self, store: RunStore) -> None:
        later = now() + datetime.timedelta(minutes=5)
        run = new_task_run(store, state=Scheduled(scheduled_time=later))

        result = store.propose_state(run.id, Running())

        assert result.status == SetStateStatus.WAIT
        assert result.delay_seconds is not None and 0 < result.delay_seconds <= 300
        assert store.read_task_run(run.id).state_name == "Scheduled"

    def test_running_after_the_scheduled_time_is_accepted(self, store: RunStore) -> None:
        earlier = now() - datetime.timedelta(seconds=1)
        run = new_task_run(store, state=Scheduled(scheduled_time=earlier))

        assert store.propose_state(run.id, Running()).status == ACCEPT

    def test_running_while_cancelling_aborts(self, store: RunStore) -> None:
        run = new_flow_run(store)
        store.propose_state(run.id, Cancelling())

        result = store.propose_state(run.id, Running())

        assert result.status == SetStateStatus.ABORT
        assert result.state is not None and result.state.is_cancelling()

    def test_a_run_created_without_state_accepts_anything(self, store: RunStore) -> None:
        run = store.create_task_run(TaskRun(name="stateless"))

        assert store.propose_state(run.id, Running()).status == ACCEPT
        assert store.read_state_history(run.id)[0].is_running()

    def test_proposing_for_an_unknown_run_is_not_found(self, store: RunStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.propose_state(uuid.uuid4(), Running())


class TestRunBookkeeping:
    def test_run_count_increments_on_each_running(self, store: RunStore) -> None:
        run = new_task_run(store)
        store.propose_state(run.id, Running())
        store.propose_state(run.id, Retrying())
        store.propose_state(run.id, Retrying())

        assert store.read_task_run(run.id).run_count == 3

    def test_rejected_running_does_not_count(self, store: RunStore) -> None:
        run = new_task_run(store)
        store.propose_state(run.id, Running())
        store.propose_state(run.id, Running())

        assert store.read_task_run(run.id).run_count == 1

    def test_times_are_set_from_the_states(self, store: RunStore) -> None:
        # Given a run that started, retried and completed at known times
        run = new_flow_run(store)
        t0 = now()
        first = Running(timestamp=t0)
        retry = Retrying(timestamp=t0 + datetime.timedelta(seconds=2))
        done = Completed(timestamp=t0 + datetime.timedelta(seconds=5))
        for state in (first, retry, done):
            store.propose_state(run.id, state)

        # Then start_time is the first attempt's and the run time spans both
        read = store.read_flow_run(run.id)
        assert read.start_time == t0
        assert read.end_time == done.timestamp
        assert read.total_run_time == pytest.approx(5.0)

    def test_the_worker_of_a_running_state_is_recorded(self, store: RunStore) -> None:
        run = new_task_run(store)
        store.propose_state(run.id, Running(state_details=StateDetails(worker="w1@host")))

        assert store.read_task_run(run.id).worker == "w1@host"


class TestStateHistory:
    def test_history_lists_accepted_states_oldest_first(self, store: RunStore) -> None:
        run = new_task_run(store)
        proposed = [Running(), Retrying(), Completed()]
        for state in proposed:
            store.propose_state(run.id, state)

        history = store.read_state_history(run.id)

        assert history == [run.state, *proposed]
        assert [s.name for s in history] == ["Pending", "Running", "Retrying", "Completed"]

    def test_rejected_states_are_not_recorded(self, store: RunStore) -> None:
        run = new_task_run(store)
        store.propose_state(run.id, Running())
        store.propose_state(run.id, Running())

        assert len(store.read_state_history(run.id)) == 2

    def test_unknown_run_has_no_history(self, store: RunStore) -> None:
        with pytest.raises(ObjectNotFound):
            store.read_state_history(uuid.uuid4())

    def test_result_reference_survives_the_round_trip(self, store: RunStore) -> None:
        run = new_task_run(store)
        ref = ResultRef(storage="redis://127.0.0.1:6379/0#celerity", key="abc123")
        store.propose_state(run.id, Running())
        store.propose_state(run.id, Completed(result_ref=ref, message="done"))

        stored = store.read_task_run(run.id).state
        last = store.read_state_history(run.id)[-1]

        assert stored is not None and stored.result_ref == ref
        assert last.result_ref == ref and last.message == "done"


class TestConcurrency:
    RACERS = 8

    def test_exactly_one_racer_moves_a_run_to_running(self, make_store: StoreFactory) -> None:
        # Given a pending run and eight handles on the same store (own connections)
        run = new_task_run(make_store())
        handles = [make_store() for _ in range(self.RACERS)]
        start = threading.Barrier(self.RACERS)
        outcomes: list[SetStateStatus] = []

        def race(handle: RunStore) -> None:
            start.wait()
            outcomes.append(handle.propose_state(run.id, Running()).status)

        # When they all propose Running at once
        threads = [threading.Thread(target=race, args=(h,)) for h in handles]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # Then exactly one wins and the run ran once
        assert sorted(outcomes) == [ACCEPT] + [REJECT] * (self.RACERS - 1)
        assert handles[0].read_task_run(run.id).run_count == 1
        assert len(handles[0].read_state_history(run.id)) == 2

    def test_threads_sharing_one_handle_race_safely(self, store: RunStore) -> None:
        # Given one store object shared by threads (as a thread-pool runner does)
        run = new_task_run(store)
        start = threading.Barrier(self.RACERS)
        outcomes: list[SetStateStatus] = []

        def race() -> None:
            start.wait()
            outcomes.append(store.propose_state(run.id, Running()).status)

        threads = [threading.Thread(target=race) for _ in range(self.RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert outcomes.count(ACCEPT) == 1
        assert store.read_task_run(run.id).run_count == 1


class TestLogs:
    def test_logs_read_back_in_order_from_an_offset(self, store: RunStore) -> None:
        flow_run = new_flow_run(store)
        task_run = new_task_run(store, flow_run)
        lines = [
            RunLog(name="flow", level=20, message=f"line {i}", flow_run_id=flow_run.id)
            for i in range(3)
        ]
        lines.append(
            RunLog(
                name="task",
                level=40,
                message="from task",
                flow_run_id=flow_run.id,
                task_run_id=task_run.id,
            )
        )
        store.write_logs(lines[:2])
        store.write_logs(lines[2:])

        assert store.read_logs(flow_run.id) == lines
        assert store.read_logs(flow_run.id, offset=2) == lines[2:]
        assert store.read_logs(flow_run.id, offset=10) == []

    def test_logs_stay_with_their_flow_run(self, store: RunStore) -> None:
        mine, other = new_flow_run(store), new_flow_run(store)
        store.write_logs([RunLog(name="x", level=20, message="m", flow_run_id=other.id)])

        assert store.read_logs(mine.id) == []

    def test_writing_no_logs_is_harmless(self, store: RunStore) -> None:
        store.write_logs([])


class TestRunInputs:
    def test_input_reads_back_and_can_be_replaced(self, store: RunStore) -> None:
        flow_run = new_flow_run(store)
        store.set_run_input(flow_run.id, "approval", '{"ok": false}')
        store.set_run_input(flow_run.id, "approval", '{"ok": true}')

        assert store.read_run_input(flow_run.id, "approval") == '{"ok": true}'

    def test_missing_input_is_none(self, store: RunStore) -> None:
        flow_run = new_flow_run(store)
        store.set_run_input(flow_run.id, "a", "1")

        assert store.read_run_input(flow_run.id, "b") is None
        assert store.read_run_input(uuid.uuid4(), "a") is None


class TestCache:
    def test_cached_state_is_read_back_until_it_expires(self, store):
        from datetime import timedelta

        from engine.states import Completed, now

        # Given a completed state cached for an hour and one already expired
        store.write_cache("fresh", Completed(message="kept"), now() + timedelta(hours=1))
        store.write_cache("stale", Completed(message="gone"), now() - timedelta(seconds=1))
        # Then only the fresh one is found
        found = store.read_cache("fresh")
        assert found is not None and found.is_completed() and found.message == "kept"
        assert store.read_cache("stale") is None
        assert store.read_cache("never-written") is None

    def test_cache_without_expiry_is_kept(self, store):
        from engine.states import Completed

        store.write_cache("forever", Completed())
        assert store.read_cache("forever") is not None
