"""Task runners used directly, as ported code does: entered, then given tasks and parameters."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future

import pytest

from engine import task, unmapped
from engine.config import current_settings, overridden_settings
from engine.context import TagsContext, tags
from engine.futures import PrefectConcurrentFuture, PrefectFutureList
from engine.states import Completed
from engine.task_runners import ConcurrentTaskRunner, ThreadPoolTaskRunner


@task
def add(x, y=0):
    return x + y


@task
async def async_add(x, y=0):
    return x + y


@task
def current_tags() -> set:
    return TagsContext.get().current_tags


class TestStarting:
    @pytest.mark.parametrize("call", ["submit", "map"])
    def test_a_runner_takes_work_only_once_entered(self, call):
        runner = ThreadPoolTaskRunner()
        with pytest.raises(RuntimeError, match="Task runner is not started"):
            if call == "submit":
                runner.submit(add, {"x": 1})
            else:
                runner.map(add, {"x": [1, 2]})

    def test_not_after_it_exited_either(self):
        runner = ThreadPoolTaskRunner()
        with runner:
            assert runner.submit(add, {"x": 1}).result() == 1
        with pytest.raises(RuntimeError, match="Task runner is not started"):
            runner.submit(add, {"x": 1})

    def test_a_runner_can_be_entered_again(self):
        runner = ThreadPoolTaskRunner(max_workers=2)
        for value in (1, 2):
            with runner:
                assert runner.submit(add, {"x": value}).result() == value


class TestOptions:
    def test_duplicate_is_an_equal_fresh_runner(self):
        runner = ThreadPoolTaskRunner(max_workers=100)
        twin = runner.duplicate()
        assert twin is not runner
        assert twin == runner and hash(twin) == hash(runner)
        assert twin != ThreadPoolTaskRunner(max_workers=3)
        assert runner != "not a runner"

    def test_max_workers_sizes_the_pool(self):
        with ThreadPoolTaskRunner(max_workers=2) as runner:
            assert runner.max_workers == 2
            assert runner._executor is not None and runner._executor._max_workers == 2

    def test_max_workers_from_settings(self):
        settings = current_settings().model_copy(update={"thread_pool_max_workers": 5})
        with overridden_settings(settings):
            assert ThreadPoolTaskRunner().max_workers == 5

    def test_name_and_prefect_2_alias(self):
        assert ThreadPoolTaskRunner().name == "threadpool"
        assert ConcurrentTaskRunner is ThreadPoolTaskRunner


class TestSubmit:
    @pytest.mark.parametrize("fn", [add, async_add])
    def test_submit_returns_a_concurrent_future(self, fn):
        with ThreadPoolTaskRunner() as runner:
            future = runner.submit(fn, {"x": 1, "y": 2})
            assert isinstance(future, PrefectConcurrentFuture)
            assert isinstance(future.task_run_id, uuid.UUID)
            assert future.result() == 3
            # The wrapped future holds the final state, as Prefect's does
            assert isinstance(future.wrapped_future, Future)
            assert future.wrapped_future.result(timeout=5).is_completed()

    def test_the_submitters_context_reaches_the_task(self):
        with tags("a", "b"), ThreadPoolTaskRunner() as runner:
            assert runner.submit(current_tags, {}).result() == {"a", "b"}


class TestMap:
    def test_a_dict_of_iterables_is_expanded(self):
        with ThreadPoolTaskRunner() as runner:
            futures = runner.map(add, {"x": [1, 2, 3], "y": [10, 20, 30]})
            assert isinstance(futures, PrefectFutureList)
            assert futures.result() == [11, 22, 33]

    def test_unmapped_and_scalars_are_passed_whole(self):
        with ThreadPoolTaskRunner() as runner:
            assert runner.map(add, {"x": [1, 2], "y": unmapped(5)}).result() == [6, 7]
            assert runner.map(add, {"x": [1, 2], "y": 100}).result() == [101, 102]

    def test_a_future_is_mapped_over_its_value(self):
        # Given a finished future whose value is a list
        source = PrefectConcurrentFuture(uuid.uuid4(), Future())
        source.wrapped_future.set_result(Completed(data=[1, 2, 3]))
        with ThreadPoolTaskRunner() as runner:
            futures = runner.map(add, {"x": source, "y": source})
            assert futures.result() == [2, 4, 6]

    def test_map_with_async_task(self):
        with ThreadPoolTaskRunner() as runner:
            assert runner.map(async_add, {"x": [1, 2]}).result() == [1, 2]


class TestNestedSubmission:
    def test_a_full_pool_does_not_deadlock_runs_submitted_by_tasks(self):
        # Given a pool of one thread, and a task that waits for a task it submits
        ran_in: list[str] = []

        @task
        def outer(runner_holder: list) -> int:
            ran_in.append(threading.current_thread().name)
            return runner_holder[0].submit(add, {"x": 41, "y": 1}).result()

        with ThreadPoolTaskRunner(max_workers=1) as runner:
            # When the outer task holds the only thread and submits the inner one
            value = runner.submit(outer, {"runner_holder": [runner]}).result(timeout=30)

        # Then the inner run got a thread of its own and both finished
        assert value == 42
        assert ran_in and ran_in[0].startswith("celerity-task")


class TestWaitingForItself:
    def test_a_run_whose_wait_for_holds_its_own_future_fails_instead_of_hanging(self):
        from engine import flow

        # Given runs that each wait for the whole queue, which each joins after submitting
        @flow
        def queue_flow():
            queue: list = []
            for i in range(3):
                queue.append(add.submit(i, wait_for=queue if queue else []))
            return [future.result() for future in queue]

        # Then the second run finds itself in its wait_for: a deadlock, reported
        with pytest.raises(ValueError, match="waits for itself"):
            queue_flow()


class TestCancelAll:
    def test_runs_not_started_end_cancelled_and_running_ones_finish(self):
        release = threading.Event()

        @task
        def blocker() -> str:
            release.wait(30)
            return "finished"

        with ThreadPoolTaskRunner(max_workers=1) as runner:
            running = runner.submit(blocker, {})
            # Held back until the blocker finishes: not in the pool yet
            later = runner.submit(add, {"x": 1}, wait_for=[running])
            executor = runner._executor
            stopping = threading.Event()
            shutdown = executor.shutdown

            def observed_shutdown(**options):
                stopping.set()
                shutdown(**options)

            executor.shutdown = observed_shutdown
            canceller = threading.Thread(target=runner.cancel_all)
            canceller.start()
            # When the pool is stopping, let the running task finish
            assert stopping.wait(10)
            release.set()
            canceller.join(30)

            # Then the running one completed and the held one never ran
            assert running.result() == "finished"
            assert later.state.is_cancelled()
            assert runner._executor is None
