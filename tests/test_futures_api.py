"""The future classes as ported code uses them, without a flow: Prefect's names on one concept.

A ``PrefectConcurrentFuture`` given a ``concurrent.futures.Future`` completes
when that one does; ``wait``, ``as_completed`` and ``FutureList.result`` wait on
any of our futures; ``PrefectDistributedFuture`` / ``PrefectFlowRunFuture``
complete from the run store.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future

import pytest

from engine import flow
from engine.futures import (
    BaseFuture,
    PrefectConcurrentFuture,
    PrefectDistributedFuture,
    PrefectFlowRunFuture,
    PrefectFuture,
    PrefectFutureList,
    PrefectWrappedFuture,
    as_completed,
    resolve_futures_to_results,
    resolve_futures_to_states,
    wait,
)
from engine.schemas import TaskRun
from engine.states import Completed, Failed, Pending, Running
from engine.store import get_store


def concurrent_future() -> tuple[PrefectConcurrentFuture, Future]:
    wrapped: Future = Future()
    return PrefectConcurrentFuture(uuid.uuid4(), wrapped), wrapped


def finished(value) -> PrefectConcurrentFuture:
    future, wrapped = concurrent_future()
    wrapped.set_result(Completed(data=value))
    return future


class TestOneFutureConcept:
    def test_prefect_names_are_our_future(self):
        future, _ = concurrent_future()
        assert PrefectFuture is BaseFuture
        assert isinstance(future, PrefectFuture)
        assert isinstance(future, PrefectWrappedFuture)

    def test_a_future_takes_attributes_of_the_callers(self):
        future, _ = concurrent_future()
        future.parameters = {"x": 1}
        assert future.parameters == {"x": 1}


class TestWrappedFuture:
    def test_pending_until_the_wrapped_future_finishes(self):
        future, wrapped = concurrent_future()
        future.wait(timeout=0.01)
        assert not future.done()
        assert future.state.is_pending()  # no such run in the store: Pending

        wrapped.set_result(Completed(data=42))

        assert future.done()
        assert future.result() == 42
        assert future.wrapped_future is wrapped

    def test_a_plain_value_becomes_a_completed_state(self):
        future, wrapped = concurrent_future()
        wrapped.set_result("value")
        assert future.state.is_completed()
        assert future.result() == "value"

    def test_an_exception_becomes_a_failed_state(self):
        future, wrapped = concurrent_future()
        wrapped.set_exception(ValueError("oops"))
        assert future.state.is_failed()
        with pytest.raises(ValueError, match="oops"):
            future.result()
        assert isinstance(future.result(raise_on_failure=False), ValueError)

    def test_a_failed_state_raises_its_exception(self):
        future, wrapped = concurrent_future()
        wrapped.set_result(Failed(data=ValueError("bad")))
        with pytest.raises(ValueError, match="bad"):
            future.result()

    def test_a_cancelled_wrapped_future_cancels(self):
        future, wrapped = concurrent_future()
        wrapped.cancel()
        assert future.state.is_cancelled()

    def test_result_timeout(self):
        future, _ = concurrent_future()
        with pytest.raises(TimeoutError):
            future.result(timeout=0.01)

    def test_a_future_without_a_wrapped_one_mirrors_into_one(self):
        # Given a future a runner completes (no wrapped future of its own)
        future = PrefectConcurrentFuture(uuid.uuid4())
        mirror = future.wrapped_future
        assert isinstance(mirror, Future) and not mirror.done()

        # When the runner completes it, then the mirror holds the final state
        state = Completed(data=7)
        future.set_final_state(state)
        assert mirror.result(timeout=5) is state
        assert future.wrapped_future is mirror


class TestDoneCallbacks:
    def test_a_raising_callback_does_not_hide_completion_from_waiters(self):
        # Given a user's callback that raises a BaseException, registered first
        future, wrapped = concurrent_future()
        future.add_done_callback(lambda _f: (_ for _ in ()).throw(KeyboardInterrupt("boom")))
        seen: list = []
        completer_error: list[BaseException] = []

        def complete() -> None:
            try:
                wrapped.set_result(Completed(data=42))
            except BaseException as exc:
                completer_error.append(exc)

        # When the future completes while as_completed waits on it
        thread = threading.Thread(target=complete)
        thread.start()
        seen.extend(f.result() for f in as_completed([future], timeout=5))
        thread.join()

        # Then the waiter saw it, and the interrupt reached whoever completed it
        assert seen == [42]
        assert [type(e) for e in completer_error] == [KeyboardInterrupt]


class TestWait:
    def test_done_and_not_done(self):
        done_future = finished(1)
        hanging, _ = concurrent_future()
        done, not_done = wait([done_future, hanging, done_future], timeout=0.01)
        assert done == {done_future}
        assert not_done == {hanging}

    def test_without_timeout_every_future_is_done(self):
        futures = [finished(i) for i in range(3)]
        assert wait(futures) == ({*futures}, set())

    @pytest.mark.parametrize("waiter", [wait, lambda fs, timeout: list(as_completed(fs, timeout))])
    def test_negative_timeout_is_refused(self, waiter):
        with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
            waiter([finished(1)], timeout=-1)


class TestAsCompleted:
    def test_yields_in_completion_order(self):
        first, first_wrapped = concurrent_future()
        second, second_wrapped = concurrent_future()
        order = as_completed([first, second], timeout=5)
        second_wrapped.set_result(Completed(data="second"))
        assert next(order) is second
        first_wrapped.set_result(Completed(data="first"))
        assert next(order) is first

    def test_zero_timeout_yields_what_is_done(self):
        assert [f.result() for f in as_completed([finished(42)], timeout=0)] == [42]

    def test_timeout_says_how_many_are_unfinished(self):
        hanging, _ = concurrent_future()
        futures = [finished(1), hanging]
        with pytest.raises(TimeoutError, match=r"^1 \(of 2\) futures unfinished$"):
            list(as_completed(futures, timeout=0.01))


class TestFutureList:
    def test_results_keep_list_order_and_duplicates(self):
        slow, slow_wrapped = concurrent_future()
        fast = finished("fast")
        futures = PrefectFutureList([slow, fast, slow])
        threading.Thread(target=slow_wrapped.set_result, args=(Completed(data="slow"),)).start()
        assert futures.result(timeout=5) == ["slow", "fast", "slow"]

    def test_a_failure_is_raised_before_earlier_futures_finish(self):
        # Given a list whose first future is still running and second failed
        slow, slow_wrapped = concurrent_future()
        failed, failed_wrapped = concurrent_future()
        failed_wrapped.set_exception(ValueError("fast fail"))
        try:
            # Then the failure is raised without waiting for the first
            with pytest.raises(ValueError, match="fast fail"):
                PrefectFutureList([slow, failed]).result()
        finally:
            slow_wrapped.set_result(Completed(data=None))

    def test_raise_on_failure_false_returns_the_exception(self):
        futures = PrefectFutureList([finished(0), finished(1)])
        failed, wrapped = concurrent_future()
        wrapped.set_result(Failed(data=ValueError("oops")))
        futures.append(failed)
        values = futures.result(raise_on_failure=False)
        assert values[:2] == [0, 1]
        assert isinstance(values[2], ValueError)

    def test_timeout_has_its_own_message(self):
        hanging, _ = concurrent_future()
        with pytest.raises(TimeoutError, match="within 0.05 seconds"):
            PrefectFutureList([hanging]).result(timeout=0.05)

    def test_a_timeout_a_task_raised_is_not_ours(self):
        failed, wrapped = concurrent_future()
        wrapped.set_result(Failed(data=TimeoutError("task's own")))
        with pytest.raises(TimeoutError, match="task's own"):
            PrefectFutureList([failed]).result(timeout=5)

    def test_negative_timeout_is_refused(self):
        with pytest.raises(ValueError, match="non-negative"):
            PrefectFutureList([finished(1)]).result(timeout=-1)


class TestResolvingFutures:
    def test_a_future_list_becomes_a_plain_list(self):
        future = finished("v")
        states = resolve_futures_to_states(PrefectFutureList([future, future]))
        assert type(states) is list
        assert states == [future.state, future.state]
        values = resolve_futures_to_results(PrefectFutureList([future]))
        assert type(values) is list and values == ["v"]

    def test_futures_in_nested_collections(self):
        future = finished(3)
        assert resolve_futures_to_results({"a": [future], "b": (future,)}) == {"a": [3], "b": (3,)}


class TestFuturesFromTheStore:
    def test_a_distributed_future_completes_when_its_run_is_final(self):
        # Given a task run that another thread runs
        run_id = uuid.uuid4()
        state = Pending()
        state.state_details.task_run_id = run_id
        get_store().create_task_run(TaskRun(id=run_id, name="elsewhere", state=state))
        future = PrefectDistributedFuture(run_id)
        future.wait(timeout=0.01)
        assert not future.done() and future.state.is_pending()

        def run_elsewhere() -> None:
            get_store().propose_state(run_id, Running())
            get_store().propose_state(run_id, Completed(data="done"))

        # When the run finishes, then waiting on the future sees it
        thread = threading.Thread(target=run_elsewhere)
        thread.start()
        assert future.result(timeout=10) == "done"
        thread.join()

    def test_a_flow_run_future(self):
        @flow
        def forty_two() -> int:
            return 42

        state = forty_two(return_state=True)
        future = PrefectFlowRunFuture(state.state_details.flow_run_id)
        assert future.flow_run_id == state.state_details.flow_run_id
        assert future.result(timeout=10) == 42
        assert PrefectFlowRunFuture(uuid.uuid4()).state.is_pending()


class TestSuspensionRequests:
    def test_waiting_on_a_future_is_where_a_requested_suspension_stops_the_flow(self):
        from engine.exceptions import Pause
        from engine.states import Suspended

        class Request:
            """A flow run's suspension request, as the flow run context carries it."""

            state = None

            def raise_if_requested(self):
                if self.state is not None:
                    raise Pause(state=self.state)

        @flow
        def suspendable(method: str) -> str:
            from engine.context import FlowRunContext

            request = Request()
            FlowRunContext.get().flow_run_suspension_request = request
            future, wrapped = concurrent_future()
            wrapped.set_result("done")
            future.wait()  # nothing requested yet: returns
            request.state = Suspended()
            if method == "wait":
                future.wait(timeout=0.01)
            elif method == "result":
                future.result(timeout=0.01)
            else:
                wait([future], timeout=0.01)
            return "not suspended"

        for method in ("wait", "result", "module wait"):
            with pytest.raises(Pause):
                suspendable(method)
