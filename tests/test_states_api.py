"""The states API that ported code calls directly, without running a flow.

Issue 8: ``StateGroup``, ``Submitting`` / ``InfrastructurePending``, how a
state's exception is found (nested states raise ValueError when nothing in
them failed), and the outcome-to-state functions.
"""

import asyncio
import signal

import pytest

from engine.exceptions import CancelledRun, CrashedRun, FailedRun, TerminationSignal
from engine.results import ResultRecord, ResultStore
from engine.states import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    InfrastructurePending,
    Paused,
    Pending,
    Running,
    StateGroup,
    StateType,
    Submitting,
    aget_state_exception,
    exception_to_crashed_state,
    exception_to_crashed_state_sync,
    exception_to_failed_state,
    exception_to_failed_state_sync,
    get_state_exception,
    is_state_iterable,
    raise_state_exception,
    return_value_to_state,
    return_value_to_state_sync,
)
from engine.utilities.annotations import quote

FAILING = [Failed, Crashed, Cancelled]
WRAPPER = {Failed: FailedRun, Crashed: CrashedRun, Cancelled: CancelledRun}


class TestPendingNames:
    @pytest.mark.parametrize(
        ("constructor", "name"),
        [(Submitting, "Submitting"), (InfrastructurePending, "InfrastructurePending")],
    )
    def test_a_named_kind_of_pending(self, constructor, name):
        state = constructor(message="starting")
        assert state.type == StateType.PENDING
        assert state.is_pending()
        assert (state.name, state.message) == (name, "starting")

    def test_state_details_may_be_a_dict(self):
        state = Completed(state_details={"cache_key": "k"})
        assert state.state_details.cache_key == "k"


class TestStateExceptions:
    @pytest.mark.parametrize("constructor", FAILING)
    def test_the_states_exception(self, constructor):
        exc = ValueError("inner")
        assert get_state_exception(constructor(data=exc)) is exc

    @pytest.mark.parametrize("constructor", FAILING)
    def test_string_or_missing_value_is_wrapped(self, constructor):
        from_string = get_state_exception(constructor(data="said so"))
        from_message = get_state_exception(constructor(message="the message"))
        assert type(from_string) is WRAPPER[constructor] and str(from_string) == "said so"
        assert type(from_message) is WRAPPER[constructor]
        assert str(from_message) == "the message"

    @pytest.mark.parametrize("constructor", FAILING)
    def test_nested_state_gives_its_exception(self, constructor):
        with pytest.raises(ValueError, match="deep"):
            raise_state_exception(constructor(data=Failed(data=ValueError("deep"))))

    @pytest.mark.parametrize("constructor", FAILING)
    def test_nested_state_that_did_not_fail_is_a_value_error(self, constructor):
        with pytest.raises(ValueError, match="Expected failed or crashed state got Completed"):
            raise_state_exception(constructor(data=Completed(data="fine")))

    def test_first_failure_of_many(self):
        inner = [Completed(), Failed(data=KeyError("first")), Failed(data=KeyError("second"))]
        with pytest.raises(KeyError, match="first"):
            raise_state_exception(Failed(data=inner))

    def test_many_without_a_failure_is_a_value_error(self):
        with pytest.raises(ValueError, match="none were failed"):
            raise_state_exception(Failed(data=[Completed(), Completed()]))

    def test_value_that_cannot_explain_a_failure(self):
        with pytest.raises(TypeError, match="int cannot be resolved into an exception"):
            get_state_exception(Failed(data=2))

    def test_completed_state_raises_nothing(self):
        assert raise_state_exception(Completed(data=1)) is None



class TestStateGroup:
    def test_counts(self):
        group = StateGroup([Failed(), Crashed(), Completed(), Cancelled(), Paused(), Running()])
        assert group.total_count == 6
        assert group.fail_count == 2
        assert group.not_final_count == 2
        assert group.any_failed() and group.any_cancelled() and group.any_paused()
        assert not group.all_completed() and not group.all_final()

    def test_all_completed_and_final(self):
        group = StateGroup([Completed(), Completed()])
        assert group.all_completed() and group.all_final()
        assert not (group.any_failed() or group.any_cancelled() or group.any_paused())

    def test_counts_message(self):
        message = StateGroup([Failed(), Running(), Running()]).counts_message()
        assert message == "total=3, not_final=2, 'FAILED'=1, 'RUNNING'=2"


class TestIsStateIterable:
    @pytest.mark.parametrize("kind", [list, tuple, set])
    def test_supported_containers(self, kind):
        assert is_state_iterable(kind([Completed(), Failed()]))

    @pytest.mark.parametrize(
        "value",
        [[], {Completed(): 1}, [Completed(), 1], quote([Completed()]), (s for s in [Completed()])],
        ids=["empty", "dict", "mixed", "quoted", "generator"],
    )
    def test_other_values(self, value):
        assert not is_state_iterable(value)


class TestExceptionToState:
    def test_failed_names_the_exception_and_is_not_retriable(self):
        exc = ValueError("bad")
        state = exception_to_failed_state(exc, message="While loading:")
        assert state.is_failed() and state.data is exc
        assert state.message == "While loading: ValueError: bad"
        assert state.state_details.retriable is False

    def test_failed_takes_the_active_exception(self):
        try:
            raise RuntimeError("active")
        except RuntimeError:
            state = exception_to_failed_state_sync()
        assert state.message == "RuntimeError: active"

    def test_failed_needs_an_exception(self):
        with pytest.raises(ValueError, match="no active exception"):
            exception_to_failed_state_sync()

    @pytest.mark.parametrize(
        ("exc", "words"),
        [
            (KeyboardInterrupt(), "interrupt signal"),
            (SystemExit(1), "system exit"),
            (TerminationSignal(signal.SIGTERM), "termination signal"),
            (asyncio.CancelledError(), "cancelled by the runtime"),
            (RuntimeError("odd"), "unexpected exception: RuntimeError: odd"),
        ],
    )
    def test_crashed_explains_the_interruption(self, exc, words):
        state = exception_to_crashed_state_sync(exc)
        assert state.is_crashed() and state.data is exc
        assert words in state.message

    def test_awaitable_in_async_code(self):
        async def caller():
            failed = await exception_to_failed_state(ValueError("a"))
            crashed = await exception_to_crashed_state(KeyboardInterrupt())
            return failed, crashed

        failed, crashed = asyncio.run(caller())
        assert failed.is_failed() and crashed.is_crashed()


class TestReturnValueToState:
    def test_a_state_made_by_hand_is_used_as_it_is(self):
        state = Completed(message="done")
        assert return_value_to_state_sync(state, None) is state
        assert state.result() is None

    @pytest.mark.parametrize(
        ("states", "kind", "message"),
        [
            ([Completed(), Completed()], StateType.COMPLETED, "All states completed."),
            ([Completed(), Failed(), Crashed()], StateType.FAILED, "2/3 states failed."),
            ([Completed(), Cancelled()], StateType.CANCELLED, "1/2 states cancelled."),
            ([Completed(), Paused()], StateType.PAUSED, "1/2 states paused."),
            ([Running(), Pending()], StateType.FAILED, "2/2 states are not final."),
        ],
    )
    def test_states_are_aggregated(self, states, kind, message):
        state = return_value_to_state_sync(states)
        assert (state.type, state.message) == (kind, message)
        assert state.data == states

    def test_a_generator_becomes_a_list(self):
        state = return_value_to_state_sync(n * n for n in range(3))
        assert state.result() == [0, 1, 4]

    def test_awaitable_in_async_code(self):
        async def caller():
            return await return_value_to_state("value", None)

        assert asyncio.run(caller()).result() == "value"


class TestResultWithoutRaising:
    def test_an_aggregate_gives_its_states(self):
        inner = [Completed(), Failed(message="x")]
        assert Failed(data=inner).result(raise_on_failure=False) == inner

    def test_a_message_value_is_returned_as_it_is(self):
        assert Failed(data="hello!").result(raise_on_failure=False) == "hello!"

    def test_no_value_gives_an_exception_from_the_message(self):
        error = Crashed(message="gone").result(raise_on_failure=False)
        assert isinstance(error, CrashedRun) and str(error) == "gone"


class TestResultRecords:
    """Ported code builds states around result records; the value is the record's."""

    def test_a_record_value_is_unwrapped(self):
        store = ResultStore()
        assert Completed(data=store.create_result_record("v")).result() == "v"

    def test_a_records_metadata_is_read_from_its_store(self):
        store = ResultStore()
        record = store.create_result_record(KeyError("stored"))
        store.persist_result_record(record)
        state = Failed(data=record.metadata)
        with pytest.raises(KeyError, match="stored"):
            raise_state_exception(state)
        assert isinstance(asyncio.run(aget_state_exception(state)), KeyError)

    def test_return_value_with_a_store_becomes_a_written_record(self):
        store = ResultStore()
        state = return_value_to_state_sync(5, store, key="five", write_result=True)
        assert isinstance(state.data, ResultRecord)
        assert store.read("five").result == 5
        assert state.result() == 5

    def test_a_record_returned_is_kept(self):
        store = ResultStore()
        record = store.create_result_record(42)
        state = return_value_to_state_sync(record, store)
        assert state.data is record and state.result() == 42

    def test_an_exception_with_a_store_becomes_a_record(self):
        state = exception_to_failed_state_sync(ValueError("x"), result_store=ResultStore())
        assert isinstance(state.data, ResultRecord)
        assert isinstance(state.result(raise_on_failure=False), ValueError)


def test_the_client_schema_path_names_the_same_state_and_run_classes():
    """Ported code imports ``StateType`` and the run records from
    ``prefect.client.schemas.objects``: that path names Celerity's own classes,
    so a state made from either compares as one."""
    from engine import schemas
    from engine.client.schemas import objects

    assert objects.StateType is StateType
    assert Completed().type == objects.StateType.COMPLETED
    assert objects.FlowRun is schemas.FlowRun and objects.TaskRun is schemas.TaskRun
    run = objects.TaskRun(name="t", state=Failed())
    assert run.state_type is objects.StateType.FAILED
