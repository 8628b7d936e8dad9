"""Cache policies (engine.cache_policies): keys from whatever a policy is given, and algebra."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from engine.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NO_CACHE,
    RUN_ID,
    TASK_SOURCE,
    CacheKeyFnPolicy,
    CachePolicy,
    CompoundCachePolicy,
    Inputs,
    RunId,
    TaskSource,
)
from engine.locking import MemoryLockManager


def key_of(policy, task_ctx=None, inputs=None, flow_parameters=None):
    return policy.compute_key(task_ctx=task_ctx, inputs=inputs, flow_parameters=flow_parameters)


def a_task():
    return 1


def context(run_id="run-1", flow_run_id="flow-1", fn=a_task):
    return SimpleNamespace(
        task=SimpleNamespace(fn=fn), task_run=SimpleNamespace(id=run_id, flow_run_id=flow_run_id)
    )


class TestKeysFromWhatIsGiven:
    def test_no_context_means_no_key_from_the_policies_that_need_one(self):
        assert key_of(TASK_SOURCE) is None and key_of(RUN_ID) is None
        assert key_of(FLOW_PARAMETERS) is None and key_of(INPUTS) is None
        assert key_of(NO_CACHE, context(), {"x": 1}, {"y": 2}) is None

    def test_the_default_policy_keys_on_inputs_alone_without_a_context(self):
        assert key_of(DEFAULT, inputs={"x": 1}) == key_of(DEFAULT, inputs={"x": 1})
        assert key_of(DEFAULT, inputs={"x": 1}) != key_of(DEFAULT, inputs={"x": 2})

    def test_run_id_prefers_the_flow_run(self):
        assert key_of(RUN_ID, context("t", "f")) == "f"
        assert key_of(RUN_ID, context("t", None)) == "t"

    def test_task_source_changes_with_the_code(self):
        def other():
            return 2

        assert key_of(TASK_SOURCE, context()) != key_of(TASK_SOURCE, context(fn=other))

    def test_stored_source_code_is_preferred(self):
        ctx = SimpleNamespace(task=SimpleNamespace(source_code="def f(): pass", fn=a_task))
        same = SimpleNamespace(task=SimpleNamespace(source_code="def f(): pass", fn=len))
        assert key_of(TASK_SOURCE, ctx) == key_of(TASK_SOURCE, same)

    def test_inputs_key_ignores_argument_order_and_excluded_names(self):
        policy = Inputs(exclude=["verbose"])
        assert key_of(policy, inputs={"a": 1, "b": 2}) == key_of(
            policy, inputs={"b": 2, "a": 1, "verbose": True}
        )

    def test_sets_key_the_same_whatever_their_order(self):
        assert key_of(INPUTS, inputs={"s": {"b", "a", "c"}}) == key_of(
            INPUTS, inputs={"s": {"c", "a", "b"}}
        )

    def test_inputs_that_cannot_be_serialized_say_how_to_fix_it(self):
        with pytest.raises(ValueError) as raised:
            key_of(INPUTS, inputs={"lock": threading.Lock()})
        message = str(raised.value)
        assert "could not be serialized" in message and "cache_policy=NO_CACHE" in message

    def test_a_key_function_without_a_function_gives_no_key(self):
        assert key_of(CacheKeyFnPolicy()) is None
        fn_policy = CachePolicy.from_cache_key_fn(lambda ctx, params: f"k{params['x']}")
        assert key_of(fn_policy, inputs={"x": 3}) == "k3"

    def test_the_base_policy_computes_nothing(self):
        with pytest.raises(NotImplementedError):
            key_of(CachePolicy())


class TestAddition:
    def test_compound_keys_ignore_parts_without_a_key(self):
        assert key_of(INPUTS + TASK_SOURCE, inputs={"x": 1}) == key_of(
            INPUTS + RUN_ID, inputs={"x": 1}
        )
        assert key_of(CompoundCachePolicy(policies=[NO_CACHE, NO_CACHE])) is None

    def test_order_does_not_change_the_key(self):
        ctx = context()
        assert key_of(INPUTS + RUN_ID, ctx, {"x": 1}) == key_of(RUN_ID + INPUTS, ctx, {"x": 1})

    def test_nested_compounds_flatten_and_repeats_are_kept_once(self):
        policy = CompoundCachePolicy(
            policies=[INPUTS + TASK_SOURCE, CompoundCachePolicy(policies=[RUN_ID, TASK_SOURCE])]
        )
        assert policy.policies == [Inputs(), TaskSource(), RunId()]

    def test_several_inputs_policies_merge_their_exclusions(self):
        policy = CompoundCachePolicy(
            policies=[Inputs(exclude=["a"]), TASK_SOURCE, Inputs(exclude=["b"])]
        )
        assert policy.policies == [Inputs(exclude=["a", "b"]), TaskSource()]

    def test_no_cache_added_to_a_policy_is_that_policy(self):
        assert NO_CACHE + INPUTS == INPUTS and INPUTS + NO_CACHE is INPUTS


class TestSubtraction:
    def test_subtracting_from_inputs_gives_a_new_policy(self):
        policy = INPUTS - "x"
        assert policy == Inputs(exclude=["x"]) and INPUTS.exclude == []

    def test_subtracting_from_a_policy_without_inputs_is_a_no_op(self):
        policy = RUN_ID + TASK_SOURCE
        assert policy - "x" is policy and RUN_ID - "x" is RUN_ID

    def test_subtracting_from_a_compound_reaches_its_inputs(self):
        policy = DEFAULT - "verbose"
        assert isinstance(policy, CompoundCachePolicy)
        assert Inputs(exclude=["verbose"]) in policy.policies
        assert key_of(policy, inputs={"x": 1, "verbose": 0}) == key_of(policy, inputs={"x": 1})

    def test_only_names_can_be_subtracted(self):
        with pytest.raises(TypeError):
            INPUTS - 3  # type: ignore[operator]


class TestConfiguration:
    def test_configure_returns_a_configured_copy(self):
        locks = MemoryLockManager()
        policy = INPUTS.configure(
            key_storage="/keys", lock_manager=locks, isolation_level="SERIALIZABLE"
        )
        assert (policy.key_storage, policy.lock_manager, policy.isolation_level) == (
            "/keys",
            locks,
            "SERIALIZABLE",
        )
        assert policy is not INPUTS and INPUTS.key_storage is None
        assert INPUTS.configure() == INPUTS

    def test_a_compound_takes_the_configuration_of_its_parts(self):
        policy = INPUTS + TASK_SOURCE.configure(key_storage="/keys")
        assert policy.key_storage == "/keys"

    @pytest.mark.parametrize(
        "option, message",
        [
            ("key_storage", "different storage locations"),
            ("lock_manager", "different lock implementations"),
            ("isolation_level", "different isolation levels"),
        ],
    )
    def test_adding_policies_configured_differently_is_refused(self, option, message):
        with pytest.raises(ValueError, match=message):
            INPUTS.configure(**{option: "one"}) + TASK_SOURCE.configure(**{option: "other"})


class TestTaskInputHash:
    def test_the_key_follows_the_task_code_and_inputs(self):
        from engine.cache_policies import task_input_hash

        def same(x):
            return x

        def changed(x):
            return x + 1

        def key(fn, task_key="t", **arguments):
            return task_input_hash(
                SimpleNamespace(task=SimpleNamespace(task_key=task_key, fn=fn)), arguments
            )

        assert key(same, x=1) == key(same, x=1)
        assert key(same, x=1) != key(same, x=2)
        assert key(same, x=1) != key(changed, x=1)
        assert key(same, x=1) != key(same, task_key="other", x=1)
        assert key(same, lock=threading.Lock()) is None


class TestTaskOptions:
    def test_a_cache_key_fn_wins_over_a_policy_and_the_warning_says_so(self, caplog):
        from engine import task
        from engine.cache_policies import INPUTS

        with caplog.at_level("WARNING"):
            chosen = task(cache_policy=INPUTS, cache_key_fn=lambda *_: "fixed")(lambda x: x)
        assert "`cache_key_fn` will be used" in caplog.text
        assert chosen.cache_policy.compute_key(None, {"x": 1}, {}) == "fixed"
