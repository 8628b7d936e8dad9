"""Transactions: task runs in a block commit together, or roll back with their hooks.

Hooks record ``(event, label)`` under the test's key, which the flow keeps in
the transaction (``txn.set("key", key)``) and hooks read back with
``txn.get("key")``: a hook sees its parent transaction's values.
"""

import asyncio
import time
import uuid

import pytest

from engine import flow, task
from engine.cache_policies import INPUTS
from engine.exceptions import ConfigurationError
from engine.results import ResultStore, get_result_store
from engine.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    TransactionState,
    atransaction,
    get_transaction,
    transaction,
)

from ._side_effects import record, recorded


def _hooks(label):
    def on_commit(txn):
        record(txn.get("key"), ("commit", label))

    def on_rollback(txn):
        record(txn.get("key"), ("rollback", label))

    return on_commit, on_rollback


_commit_b, _rollback_b = _hooks("b")
_commit_c, _rollback_c = _hooks("c")


@task
def step_a(key):
    record(key, ("run", "a"))
    return "a"


@step_a.on_commit
def step_a_committed(txn):
    record(txn.get("key"), ("commit", "a"))


@step_a.on_rollback
def step_a_rolled_back(txn):
    record(txn.get("key"), ("rollback", "a"))


@task(on_commit=[_commit_b], on_rollback=[_rollback_b])
def step_b(key):
    record(key, ("run", "b"))
    return "b"


def _exploding_rollback(txn):
    record(txn.get("key"), ("rollback", "exploding"))
    raise RuntimeError("rollback hook exploded on purpose")


@task(on_commit=[_commit_c], on_rollback=[_exploding_rollback, _rollback_c])
def step_c(key):
    record(key, ("run", "c"))
    return "c"


@task(on_rollback=[_hooks("failing")[1]])
def failing_step(key):
    record(key, ("run", "failing"))
    raise ValueError("quality check failed")


@task(cache_policy=INPUTS, on_rollback=[_hooks("cached")[1]])
def cached_step(key, salt):
    record(key, ("run", "cached"))
    return salt


class QualityError(Exception):
    pass


@flow
def inline_pipeline(key, fail=False, commit_mode=None):
    with transaction(commit_mode=commit_mode) as txn:
        txn.set("key", key)
        step_a(key)
        step_b(key)
        if fail:
            raise QualityError("bad data")
    return txn.state


@flow
def submitted_pipeline(key, fail=False):
    with transaction() as txn:
        txn.set("key", key)
        step_a.submit(key)
        step_b.submit(key)
        if fail:
            raise QualityError("bad data")
    return txn.state


def _run_catching(flow_fn, *args, **kwargs):
    with pytest.raises(QualityError):
        flow_fn(*args, **kwargs)


def _hook_events(key):
    return [event for event in recorded(key) if event[0] != "run"]


class TestCommitOnSuccess:
    def test_commit_hooks_run_in_the_order_the_tasks_ran(self, key):
        state = inline_pipeline(key)
        assert state == TransactionState.COMMITTED
        assert recorded(key) == [("run", "a"), ("run", "b"), ("commit", "a"), ("commit", "b")]

    def test_submitted_runs_commit_with_the_block(self, key):
        assert submitted_pipeline(key) == TransactionState.COMMITTED
        assert sorted(_hook_events(key)) == [("commit", "a"), ("commit", "b")]


class TestRollbackOnError:
    def test_rollback_hooks_run_in_reverse_order_and_the_error_propagates(self, key):
        _run_catching(inline_pipeline, key, fail=True)
        assert recorded(key) == [
            ("run", "a"),
            ("run", "b"),
            ("rollback", "b"),
            ("rollback", "a"),
        ]

    def test_submitted_runs_are_waited_for_then_rolled_back(self, key):
        _run_catching(submitted_pipeline, key, fail=True)
        events = recorded(key)
        assert sorted(events) == [
            ("rollback", "a"),
            ("rollback", "b"),
            ("run", "a"),
            ("run", "b"),
        ]
        assert not any(event[0] == "commit" for event in events)

    def test_a_failing_rollback_hook_is_logged_and_the_rest_still_run(self, key):
        @flow
        def with_exploding_hook():
            with transaction() as txn:
                txn.set("key", key)
                step_a(key)
                step_c(key)
                raise QualityError("bad data")

        _run_catching(with_exploding_hook)
        assert _hook_events(key) == [
            ("rollback", "c"),
            ("rollback", "exploding"),
            ("rollback", "a"),
        ]


class TestFailedTaskRollsBackItsTransaction:
    def test_inline_failure_rolls_back_tasks_that_completed(self, key):
        @flow
        def pipeline():
            with transaction() as txn:
                txn.set("key", key)
                step_a(key)
                state = failing_step(key, return_state=True)
            return state.name, txn.state

        assert pipeline() == ("Failed", TransactionState.ROLLED_BACK)
        # The failed run staged nothing: only the completed run is undone.
        assert _hook_events(key) == [("rollback", "a")]

    def test_submitted_failure_rolls_back_tasks_that_completed(self, key):
        @flow
        def pipeline():
            with transaction() as txn:
                txn.set("key", key)
                step_a(key)
                failing_step.submit(key).wait()
                step_b(key)  # staged into a rolled-back transaction: undone at once
            return txn.state

        assert pipeline() == TransactionState.ROLLED_BACK
        # On Celery the failure is settled from the listener thread, so b may
        # be staged before or after the rollback: both end rolled back.
        assert sorted(_hook_events(key)) == [("rollback", "a"), ("rollback", "b")]


class TestNesting:
    def test_child_values_and_parent_values_are_both_visible(self, key):
        @flow
        def nested():
            with transaction() as parent:
                parent.set("key", key)
                parent.set("where", "parent")
                with transaction() as child:
                    child.set("where", "child")
                    seen = (child.get("key") == key, child.get("where"), parent.get("where"))
            return seen

        assert nested() == (True, "child", "parent")

    def test_child_commits_when_its_parent_commits(self, key):
        @flow
        def nested():
            with transaction() as parent:
                parent.set("key", key)
                with transaction() as child:
                    step_a(key)
                after_child = child.state
                record(key, ("parent", "continues"))
            return after_child, child.state

        assert nested() == (TransactionState.ACTIVE, TransactionState.COMMITTED)
        assert recorded(key) == [("run", "a"), ("parent", "continues"), ("commit", "a")]

    def test_parent_rollback_rolls_back_a_finished_child(self, key):
        @flow
        def nested():
            with transaction() as parent:
                parent.set("key", key)
                with transaction():
                    step_a(key)
                step_b(key)
                raise QualityError("bad data")

        _run_catching(nested)
        assert _hook_events(key) == [("rollback", "b"), ("rollback", "a")]


class TestCommitModes:
    def test_eager_children_commit_as_soon_as_they_finish(self, key):
        @flow
        def eager():
            with transaction(commit_mode=CommitMode.EAGER) as txn:
                txn.set("key", key)
                step_a(key)
                record(key, ("block", "continues"))
                raise QualityError("bad data")

        _run_catching(eager)
        # Committed work stays committed: no rollback hook for it.
        assert recorded(key) == [("run", "a"), ("commit", "a"), ("block", "continues")]

    def test_off_rolls_back_unless_committed_explicitly(self, key):
        inline_pipeline(key, commit_mode=CommitMode.OFF)
        assert _hook_events(key) == [("rollback", "b"), ("rollback", "a")]

    def test_off_with_an_explicit_commit(self, key):
        @flow
        def explicit():
            with transaction(commit_mode=CommitMode.OFF) as txn:
                txn.set("key", key)
                step_a(key)
                committed = txn.commit()
            return committed, txn.state

        assert explicit() == (True, TransactionState.COMMITTED)
        assert _hook_events(key) == [("commit", "a")]


class TestCachingInTransactions:
    @pytest.mark.parametrize("how", ["inline", "submit"])
    def test_a_rolled_back_result_is_not_reused(self, key, how):
        salt = uuid.uuid4().hex

        @flow
        def rolled_back():
            with transaction() as txn:
                txn.set("key", key)
                run = cached_step if how == "inline" else _submitted(cached_step)
                run(key, salt)
                raise QualityError("bad data")

        @flow
        def again():
            return cached_step(key, salt, return_state=True).name

        _run_catching(rolled_back)
        assert again() == "Completed"  # ran again: nothing was cached
        assert recorded(key) == [("run", "cached"), ("rollback", "cached"), ("run", "cached")]

    @pytest.mark.parametrize("how", ["inline", "submit"])
    def test_a_committed_result_is_reused(self, key, how):
        salt = uuid.uuid4().hex

        @flow
        def committed():
            with transaction() as txn:
                txn.set("key", key)
                run = cached_step if how == "inline" else _submitted(cached_step)
                run(key, salt)
                # Not committed yet: another run in the block does not see it.
                first_inside = cached_step(key, salt, return_state=True).name
            return first_inside, cached_step(key, salt, return_state=True).name

        assert committed() == ("Completed", "Cached")
        assert recorded(key) == [("run", "cached"), ("run", "cached")]


def _submitted(task_obj):
    def run(*args):
        return task_obj.submit(*args).result()

    return run


class TestTransactionKeys:
    def test_a_committed_key_starts_committed_next_time(self, key):
        txn_key = f"txn-{uuid.uuid4().hex}"

        @flow
        def idempotent():
            with transaction(key=txn_key) as txn:
                if txn.is_committed():
                    return "skipped"
                record(key, "work")
            return "done"

        assert [idempotent(), idempotent()] == ["done", "skipped"]
        assert recorded(key) == ["work"]

    def test_a_rolled_back_key_does_not_start_committed(self, key):
        txn_key = f"txn-{uuid.uuid4().hex}"

        @flow
        def attempt(fail):
            with transaction(key=txn_key) as txn:
                started = txn.state
                if fail:
                    raise QualityError("bad data")
            return started

        _run_catching(attempt, True)
        assert attempt(False) == TransactionState.ACTIVE

    def test_overwrite_ignores_the_record_and_staged_values_are_read_back(self, key):
        txn_key = f"txn-{uuid.uuid4().hex}"

        @flow
        def write(value, overwrite=False):
            with transaction(key=txn_key, overwrite=overwrite) as txn:
                txn.stage(value)
                started = txn.state
            return started, txn.read().result

        assert write("first") == (TransactionState.STAGED, "first")
        assert write("second") == (TransactionState.COMMITTED, "first")
        assert write("third", overwrite=True) == (TransactionState.STAGED, "third")


class TestTransactionObject:
    def test_states_through_a_block(self):
        txn = Transaction()
        assert txn.state == TransactionState.PENDING and get_transaction() is None
        with txn:
            assert txn.is_active() and get_transaction() is txn
            txn.stage("value")
            assert txn.is_staged()
        assert txn.is_committed() and get_transaction() is None
        assert txn.commit() is False and txn.rollback() is False

    def test_get_defaults_and_copies(self):
        with transaction() as txn:
            txn.set("items", [1])
            txn.get("items").append(2)
            assert txn.get("items") == [1]
            assert txn.get("missing", "fallback") == "fallback"
            with pytest.raises(ValueError, match="missing"):
                txn.get("missing")

    def test_children_inherit_modes_and_know_their_parent(self):
        with transaction(
            commit_mode=CommitMode.EAGER, isolation_level=IsolationLevel.SERIALIZABLE
        ) as parent:
            with transaction(key=f"k-{uuid.uuid4().hex}") as child:
                assert child.get_parent() is parent
                assert (child.commit_mode, child.isolation_level) == (
                    CommitMode.EAGER,
                    IsolationLevel.SERIALIZABLE,
                )
            assert child.is_committed()  # eager: at its own exit
        assert parent.children == [child]

    def test_hooks_in_a_task_see_the_task_run_transaction_values(self, key):
        @task
        def sets_value():
            get_transaction().set("from_task", "hello")

        @sets_value.on_commit
        def read_it(txn):
            record(key, (txn.get("from_task"), txn.get("from_flow")))

        @flow
        def pipeline():
            with transaction() as txn:
                txn.set("from_flow", "flow")
                sets_value()

        pipeline()
        assert recorded(key) == [("hello", "flow")]


@task
def reports_its_transaction():
    txn = get_transaction()
    txn.set("seen", True)  # stays with the run's own transaction
    return txn is not None and txn.get("seen")


class TestSubmittedTaskSeesATransaction:
    def test_get_transaction_inside_a_submitted_task(self):
        @flow
        def pipeline():
            with transaction():
                return reports_its_transaction.submit().result()

        assert pipeline() is True


# --- async transactions -------------------------------------------------------------------


@flow
async def async_pipeline(key, fail=False):
    async with atransaction() as txn:
        txn.set("key", key)
        step_a(key)
        step_b.submit(key).wait()
        if fail:
            raise QualityError("bad data")
    return txn.state


class TestAsyncTransactions:
    def test_an_async_block_commits_the_task_runs_inside(self, key):
        assert asyncio.run(async_pipeline(key)) == TransactionState.COMMITTED
        assert _hook_events(key) == [("commit", "a"), ("commit", "b")]

    def test_an_async_block_that_raises_rolls_them_back(self, key):
        with pytest.raises(QualityError):
            asyncio.run(async_pipeline(key, fail=True))
        assert _hook_events(key) == [("rollback", "b"), ("rollback", "a")]

    def test_a_keyed_async_block_starts_committed_the_second_time(self, key):
        txn_key = f"txn-{uuid.uuid4().hex}"

        @flow
        async def idempotent():
            async with atransaction(key=txn_key) as txn:
                if txn.is_committed():
                    return (await txn.read()).result
                txn.stage("written once")
                record(key, "work")
            return "first"

        assert [asyncio.run(idempotent()), asyncio.run(idempotent())] == [
            "first",
            "written once",
        ]
        assert recorded(key) == ["work"]


# --- SERIALIZABLE: one holder of a key at a time, across threads and worker processes ------


def _wait_until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the other task run"
        time.sleep(0.02)


@task
def hold_key_until_the_other_waits(key):
    with transaction(key=f"serial-{key}", isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        record(key, "first enters")
        _wait_until(lambda: "second waits" in recorded(key))
        txn.stage("first")
        record(key, "first leaves")


@task
def take_key_after_the_first(key):
    _wait_until(lambda: "first enters" in recorded(key))
    assert get_result_store().is_locked(f"serial-{key}")  # held by the other run
    record(key, "second waits")
    with transaction(
        key=f"serial-{key}", isolation_level=IsolationLevel.SERIALIZABLE, overwrite=True
    ) as txn:
        record(key, "second enters")
        txn.stage("second")
    return txn.read().result


class TestSerializable:
    def test_a_second_holder_of_the_key_waits_for_the_first_to_commit(self, key):
        @flow
        def contend():
            first = hold_key_until_the_other_waits.submit(key)
            second = take_key_after_the_first.submit(key)
            first.wait()
            return second.result()

        assert contend() == "second"
        assert recorded(key) == ["first enters", "second waits", "first leaves", "second enters"]

    def test_a_store_without_a_lock_manager_refuses_serializable(self):
        with pytest.raises(ConfigurationError, match="SERIALIZABLE is not supported"):
            with transaction(
                key=f"k-{uuid.uuid4().hex}",
                store=ResultStore(),
                isolation_level=IsolationLevel.SERIALIZABLE,
            ):
                pass
