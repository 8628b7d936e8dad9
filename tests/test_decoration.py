"""What @flow and @task check and resolve when they decorate, before anything runs.

Issue 8 behaviours 1, 4, 5 and 14 (decoration side): generic Flow / Task
annotations, option validation, persist_result and cache policy resolution,
default names and versions, with_options and serialize_parameters.
"""

from __future__ import annotations

import inspect
import logging
import textwrap
from pathlib import Path

import pydantic
import pytest

from engine import Flow, Task, flow, task
from engine.cache_policies import DEFAULT, INPUTS, NO_CACHE, TASK_SOURCE
from engine.exceptions import InvalidNameError, ReservedArgumentError
from engine.settings import (
    PREFECT_FLOW_DEFAULT_RETRIES,
    PREFECT_TASKS_DEFAULT_NO_CACHE,
    temporary_settings,
)
from engine.utilities.callables import parameter_schema
from engine.utilities.hashing import file_hash


def hook(obj, run, state):
    return None


# --- behaviour 1: Flow[P, R] / Task[P, R] -----


class TestGenericAnnotations:
    def test_a_module_annotated_with_two_parameters_imports(self, tmp_path: Path):
        # Given a module whose annotations subscript Flow and Task like Prefect's
        module = tmp_path / "annotated.py"
        module.write_text(
            textwrap.dedent(
                """
                from engine import Flow, Task, flow, task

                @task
                def double(x: int) -> int:
                    return 2 * x

                DOUBLE: Task[[int], int] = double
                ANY_FLOW: Flow[..., str] = flow(lambda: "x")

                def run(f: Flow[[int], str]) -> str:
                    return f(1)
                """
            )
        )
        # When it is loaded, Then the annotations evaluate
        namespace: dict = {}
        exec(compile(module.read_text(), str(module), "exec"), namespace)
        assert namespace["DOUBLE"].name == "double"

    def test_subscripting_gives_parameterised_aliases(self):
        assert Flow[[int], str].__origin__ is Flow
        assert Task[..., int].__origin__ is Task


# --- behaviour 5: validation at decoration -----


class TestValidationAtDecoration:
    @pytest.mark.parametrize("name", ["my/flow", "my%flow", "my<flow", "my>flow", "my&flow"])
    def test_flow_name_with_banned_character(self, name):
        with pytest.raises(InvalidNameError, match="contains an invalid character"):
            flow(name=name)(lambda: 1)

    def test_flow_name_must_be_a_string(self):
        def get_name():
            return "x"

        with pytest.raises(TypeError, match="Perhaps you meant to call it"):
            Flow(fn=lambda: 1, name=get_name)
        with pytest.raises(TypeError, match="got int instead"):
            Flow(fn=lambda: 1, name=1)

    @pytest.mark.parametrize("decorator", [flow, task])
    def test_non_callable_hook(self, decorator):
        with pytest.raises(TypeError, match="Expected callables in 'on_completion'; got str"):
            decorator(on_completion=[hook, "not a hook"])(lambda: 1)

    @pytest.mark.parametrize("decorator", [flow, task])
    def test_hooks_must_be_iterable(self, decorator):
        with pytest.raises(TypeError, match="Expected iterable for 'on_failure'; got function"):
            decorator(on_failure=hook)(lambda: 1)

    def test_run_names_must_be_strings_or_callables(self):
        class Template:
            def format(self, *args, **kwargs):
                return "x"

        with pytest.raises(TypeError, match="'flow_run_name'; got Template instead"):
            flow(flow_run_name=Template())(lambda: 1)
        with pytest.raises(TypeError, match="'task_run_name'; got Template instead"):
            task(task_run_name=Template())(lambda: 1)

    @pytest.mark.parametrize("decorator", [flow, task])
    @pytest.mark.parametrize("reserved", ["return_state", "wait_for"])
    def test_reserved_argument_names(self, decorator, reserved):
        namespace: dict = {}
        exec(f"def fn({reserved}): pass", namespace)
        with pytest.raises(ReservedArgumentError, match=f"'{reserved}' is a reserved argument"):
            decorator(namespace["fn"])

    def test_argument_names_the_validator_reserves(self):
        def uses_v_args(v__args):
            return v__args

        with pytest.raises(ValueError, match="not compatible with `validate_parameters`"):
            flow(uses_v_args)
        assert flow(validate_parameters=False)(uses_v_args).name == "uses-v-args"

    def test_task_retry_delay_checks(self):
        with pytest.raises(TypeError, match="Invalid `retry_delay_seconds`"):
            task(retries=1, retry_delay_seconds="1")(lambda: 1)
        with pytest.raises(ValueError, match="Can not configure more than 50"):
            task(retries=51, retry_delay_seconds=[1] * 51)(lambda: 1)
        with pytest.raises(TypeError, match="`retry_condition_fn` to be callable"):
            task(retry_condition_fn=1)(lambda: 1)


# --- behaviour 14: names and versions -----


class TestDefaults:
    def test_lambda_flows_and_tasks(self):
        assert Flow(fn=lambda: 1).name == "unknown-lambda"
        assert task(lambda: 1).name == "<lambda>"

    def test_version_is_a_hash_of_the_source_file(self):
        @flow
        def versioned():
            return 1

        assert versioned.version == file_hash(__file__)
        assert flow(version="2")(versioned.fn).version == "2"

    def test_no_version_without_a_source_file(self):
        namespace: dict = {}
        exec(compile("def typed_in(): return 1", "<stdin>", "exec"), namespace)
        assert flow(namespace["typed_in"]).version is None

    def test_task_key_is_the_qualified_name(self):
        @task
        def keyed():
            return 1

        assert keyed.task_key == f"{__name__}.{keyed.fn.__qualname__}"
        assert "return 1" in keyed.source_code

    def test_callable_objects_are_named_after_their_class(self):
        class Greeter:
            def __call__(self, who):
                return f"hello {who}"

        greeter = Task(fn=Greeter())
        assert greeter.name == "Greeter"
        assert greeter.task_key.endswith(".Greeter")
        assert greeter.source_code is None

    def test_retries_default_from_settings(self):
        with temporary_settings({PREFECT_FLOW_DEFAULT_RETRIES: 2}):
            assert flow(lambda: 1).retries == 2
            assert flow(retries=0)(lambda: 1).retries == 0


# --- behaviour 4: persist_result and cache policy -----


class TestPersistAndCachePolicy:
    @pytest.mark.parametrize(
        "options",
        [
            {"cache_policy": INPUTS},
            {"cache_key_fn": lambda ctx, params: "k"},
            {"result_storage_key": "k"},
            {"result_storage": "memory://"},
            {"result_serializer": "json"},
        ],
        ids=["policy", "key_fn", "storage_key", "storage", "serializer"],
    )
    def test_result_options_imply_persist_result(self, options):
        assert task(**options)(lambda: 1).persist_result is True
        assert task(lambda: 1).with_options(**options).persist_result is True

    def test_flow_result_options_imply_persist_result(self):
        assert flow(result_serializer="json")(lambda: 1).persist_result is True
        assert flow(result_storage="memory://")(lambda: 1).persist_result is True
        assert flow(lambda: 1).persist_result is None

    def test_policy_defaults(self):
        assert task(persist_result=True)(lambda: 1).cache_policy is DEFAULT
        assert task(persist_result=False)(lambda: 1).cache_policy is NO_CACHE
        assert task(persist_result=False, cache_policy=None)(lambda: 1).cache_policy is None
        assert task(cache_policy=TASK_SOURCE)(lambda: 1).cache_policy is TASK_SOURCE
        storage_keyed = task(result_storage_key="k", persist_result=True)(lambda: 1)
        assert storage_keyed.cache_policy is None

    def test_persist_false_overrides_a_policy_with_a_warning(self, caplog):
        with caplog.at_level(logging.WARNING):
            quiet = task(persist_result=False, cache_policy=INPUTS)(lambda: 1)
        assert quiet.cache_policy is NO_CACHE
        assert "Ignoring `cache_policy` because `persist_result` is False" in caplog.text

    def test_no_cache_default_setting(self):
        with temporary_settings({PREFECT_TASKS_DEFAULT_NO_CACHE: True}):
            assert task(persist_result=True)(lambda: 1).cache_policy == NO_CACHE
            assert task(cache_policy=DEFAULT)(lambda: 1).cache_policy is DEFAULT

    def test_plain_tasks_default_to_default(self):
        plain = task(lambda: 1)
        assert plain.cache_policy == DEFAULT and plain.persist_result is None
        assert plain.with_options(name="again").cache_policy == DEFAULT


# --- with_options -----


class TestWithOptions:
    def test_signatures_align_with_the_decorators(self):
        flow_options = set(inspect.signature(flow).parameters) - {"_FlowDecorator__fn"}
        assert flow_options == set(inspect.signature(Flow.with_options).parameters) - {"self"}
        task_options = set(inspect.signature(task).parameters) - {"__fn", "version"}
        assert task_options == set(inspect.signature(Task.with_options).parameters) - {"self"}

    def test_options_kept_overridden_and_cleared(self):
        base = flow(
            name="base",
            retries=3,
            timeout_seconds=10,
            result_serializer="json",
            on_failure=[hook],
        )(lambda: 1)
        copied = base.with_options(retries=0, timeout_seconds=0, result_serializer=None)
        assert copied is not base
        assert (copied.name, copied.retries, copied.timeout_seconds) == ("base", 0, None)
        assert copied.result_serializer is None and base.result_serializer == "json"
        assert copied.on_failure_hooks == [hook]

    def test_task_tags_are_copied(self):
        original = task(tags=["a"])(lambda: 1)
        copied = original.with_options(name="copy")
        original.tags.add("b")
        assert copied.tags == {"a"}

    def test_user_persist_result_is_what_copies_start_from(self):
        plain = task(lambda: 1)
        assert plain.with_options(name="again").persist_result is None
        assert plain.with_options(persist_result=True).cache_policy is DEFAULT


# --- serialize_parameters -----


class TestSerializeParameters:
    def test_json_values_kept_others_named_by_type(self):
        @flow
        def any_flow(x, y, z):
            return x

        class Cyclic:
            def __init__(self):
                self.me = self

        serialized = any_flow.serialize_parameters({"x": [1, "a"], "y": Cyclic(), "z": {"k": 2}})
        assert serialized == {"x": [1, "a"], "y": "<Cyclic>", "z": {"k": 2}}


# --- parameter_schema -----


class Inner(pydantic.BaseModel):
    a: int


class TestParameterSchema:
    def test_properties_positions_and_docstring_descriptions(self):
        class Holder:
            @flow
            @classmethod
            def documented(cls, name: str, inner: Inner, json: int = 1):
                """Do things.

                Args:
                    name (str): who to greet,
                        on two lines
                    inner: the inner model
                """

        schema = parameter_schema(Holder.documented)
        assert schema.required == ["name", "inner"]
        assert schema.properties["name"] == {
            "title": "name",
            "type": "string",
            "position": 1,
            "description": "who to greet, on two lines",
        }
        assert schema.properties["inner"]["$ref"] == "#/definitions/Inner"
        assert schema.properties["json"]["default"] == 1
        assert "Inner" in schema.definitions

    def test_types_without_a_schema_accept_anything(self):
        class Opaque:
            pass

        def takes(thing: Opaque):
            return thing

        assert parameter_schema(takes).properties["thing"] == {"title": "thing", "position": 0}
