"""Code written for Prefect 3 ports by changing the import root: options, signatures, names."""

import datetime
import tempfile
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel

from engine import allow_failure, flow, pause_flow_run, resume_flow_run, task
from engine.cache_policies import FLOW_PARAMETERS, INPUTS, TASK_SOURCE, CachePolicy
from engine.exceptions import (
    CelerityException,
    FailedRun,
    ParameterBindError,
    ParameterTypeError,
    PausedRun,
    PrefectException,
    SignatureMismatchError,
    UnfinishedRun,
)
from engine.input import RunInput
from engine.states import (
    AwaitingConcurrencySlot,
    Cached,
    Completed,
    Failed,
    Late,
    Paused,
    exception_to_failed_state,
    return_value_to_state,
)

from . import _helpers as h
from ._side_effects import record, recorded


@task
def varargs_task(first, *rest, scale=1, **named):
    return [first, *rest], scale, named


@flow
def varargs_flow(first: int, *rest, **named):
    inline = varargs_task(first, *rest, scale=2, flag=True)
    submitted = varargs_task.submit(first, *rest, scale=3).result()
    return inline, submitted, named


@task(
    result_serializer="json",
    result_storage_key="value-{parameters[x]}.pickle",
    cache_result_in_memory=False,
    persist_result=False,
)
def prefect_options_task(x):
    return x + 1


@flow(result_serializer="pickle", cache_result_in_memory=True)
def prefect_options_flow(x: int):
    return prefect_options_task.submit(x).result() + prefect_options_task(x)


class TestSignatures:
    def test_varargs_and_varkw_pass_through_tasks_and_flows(self):
        inline, submitted, named = varargs_flow(1, 2, 3, extra="e")
        assert inline == ([1, 2, 3], 2, {"flag": True})
        assert submitted == ([1, 2, 3], 3, {})
        assert named == {"extra": "e"}


class TestPrefectOptions:
    def test_result_options_are_accepted_and_exposed(self):
        assert prefect_options_task.result_serializer == "json"
        assert prefect_options_task.result_storage_key == "value-{parameters[x]}.pickle"
        assert prefect_options_task.cache_result_in_memory is False
        assert prefect_options_flow.result_serializer == "pickle"
        assert prefect_options_task.with_options(result_serializer="pickle").result_serializer == (
            "pickle"
        )
        assert prefect_options_flow(1) == 4


class TestExceptionNames:
    def test_seed_names_exist(self):
        assert PrefectException is CelerityException
        assert issubclass(SignatureMismatchError, ParameterBindError)
        assert issubclass(PausedRun, UnfinishedRun)

    def test_bind_errors_are_type_errors(self):
        with pytest.raises(TypeError):
            varargs_task()


class TestStateApi:
    def test_failed_state_without_data_returns_its_exception(self):
        exc = Failed(message="no data").result(raise_on_failure=False)
        assert isinstance(exc, FailedRun)
        assert str(exc) == "no data"

    def test_paused_result_raises_paused_run(self):
        with pytest.raises(PausedRun) as info:
            Paused().result()
        assert info.value.state.is_paused()

    def test_str_and_repr_follow_the_seed_format(self):
        assert str(Completed()) == "Completed()"
        assert str(Failed(message="bad")) == "Failed('bad')"
        assert str(Cached()) == "Cached(type=COMPLETED)"
        assert repr(Completed(data=3)) == "Completed(message=None, type=COMPLETED, result=3)"

    def test_exception_to_failed_state(self):
        state = exception_to_failed_state(ValueError("v"))
        assert state.is_failed() and state.message == "ValueError: v"
        try:
            raise KeyError("k")
        except KeyError:
            current = exception_to_failed_state()
        assert isinstance(current.result(raise_on_failure=False), KeyError)

    def test_scheduled_named_states(self):
        assert Late().is_scheduled() and Late().name == "Late"
        assert AwaitingConcurrencySlot().is_scheduled()

    def test_return_value_to_state_accepts_seed_options(self):
        state = return_value_to_state(3, None, key="k", write_result=False)
        assert state.is_completed() and state.result() == 3


@task(tags=["runtime-tag"])
def runtime_task(x):
    from engine.runtime import flow_run, task_run

    return {
        "task_run_id": task_run.id,
        "task_name": task_run.task_name,
        "task_parameters": task_run.parameters,
        "task_tags": task_run.tags,
        "run_count": task_run.run_count,
        "flow_run_id": flow_run.id,
        "flow_name": flow_run.flow_name,
    }


@flow(flow_run_name="runtime-{x}")
def runtime_flow(x: int = 2):
    from engine import runtime

    return (
        runtime.flow_run.id,
        runtime.flow_run.name,
        runtime.flow_run.parameters,
        [
            runtime_task(x),
            runtime_task.submit(x + 1).result(),
        ],
    )


class TestRuntime:
    def test_runtime_describes_the_current_runs(self):
        flow_run_id, name, parameters, seen = runtime_flow()
        assert name == "runtime-2" and parameters == {"x": 2}
        for value, facts in zip((2, 3), seen, strict=True):
            assert facts["flow_run_id"] == flow_run_id
            assert facts["flow_name"] == "runtime-flow"
            assert facts["task_name"] == "runtime_task"
            assert facts["task_parameters"] == {"x": value}
            assert facts["task_tags"] == ["runtime-tag"]
            assert facts["run_count"] == 1
            assert facts["task_run_id"] and facts["task_run_id"] != flow_run_id

    def test_runtime_outside_runs_is_empty(self):
        from engine.runtime import deployment, flow_run, task_run

        assert flow_run.id is None and task_run.id is None and deployment.id is None
        assert flow_run.parameters == {} and task_run.tags == []


def runtime_task_run_name():
    from engine.runtime import flow_run, task_run

    return f"{flow_run.flow_name}-{task_run.task_name}-{task_run.parameters['name']}"


def runtime_flow_run_name():
    from engine.runtime import flow_run

    return f"{flow_run.flow_name}-with-{flow_run.parameters['name']}"


@task(task_run_name=runtime_task_run_name)
def named_by_runtime(name):
    from engine.runtime import task_run

    return task_run.name


@flow(flow_run_name=runtime_flow_run_name)
def named_by_runtime_flow(name: str):
    from engine.runtime import flow_run

    return flow_run.name, named_by_runtime(name), named_by_runtime.submit(name).result()


class TestRunNamesFromRuntime:
    def test_name_callables_can_read_runtime(self):
        flow_name, inline, submitted = named_by_runtime_flow("ada")
        assert flow_name == "named-by-runtime-flow-with-ada"
        assert inline == submitted == "named-by-runtime-flow-named_by_runtime-ada"


@flow
def lifecycle_logged_flow():
    return 1


class TestFlowLifecycleLogs:
    def test_flow_run_logs_beginning_and_final_state(self):
        state = lifecycle_logged_flow(return_state=True)
        messages = [log.message for log in h.logs(state.state_details.flow_run_id)]
        assert messages[0].startswith("Beginning flow run")
        assert messages[-1] == "Finished in state Completed()"


@flow
def defaults_not_validated_flow(day: datetime.date = None, label: str = None, count: int = 1):
    return day, label, count


class TestParameterDefaults:
    def test_defaults_that_do_not_match_the_hint_are_not_validated(self):
        assert defaults_not_validated_flow() == (None, None, 1)
        assert defaults_not_validated_flow("2024-01-02", count="3") == (
            datetime.date(2024, 1, 2),
            None,
            3,
        )


@task
def hooked_task(fail):
    if fail:
        raise ValueError("hooked failure")
    return "ok"


@hooked_task.on_completion
def hooked_task_completed(tsk, task_run, state):
    record(f"hooks:{task_run.id}", ("completed", state.name))


@hooked_task.on_failure
def hooked_task_failed(tsk, task_run, state):
    record(f"hooks:{task_run.id}", ("failed", state.name))


@flow
def hooked_flow():
    return "done"


@hooked_flow.on_completion
def hooked_flow_completed(flw, flow_run, state):
    record(f"hooks:{flow_run.id}", ("flow completed", state.name))


@flow
def hooked_copies_flow():
    copy = hooked_task.with_options(retries=1)
    ok = copy.submit(False)
    bad = copy.submit(True)
    ok.wait()
    bad.wait()
    return ok.task_run_id, bad.task_run_id


class TestDecoratorHooks:
    def test_task_hooks_added_by_decorators_survive_with_options(self):
        ok_id, bad_id = hooked_copies_flow()
        assert recorded(f"hooks:{ok_id}") == [("completed", "Completed")]
        assert recorded(f"hooks:{bad_id}") == [("failed", "Failed")]

    def test_flow_hook_decorators(self):
        state = hooked_flow.with_options(name="hooked-copy")(return_state=True)
        flow_run_id = state.state_details.flow_run_id
        assert recorded(f"hooks:{flow_run_id}") == [("flow completed", "Completed")]


@task
def pair(x, upstream):
    return x, type(upstream).__name__


@task
def failing_upstream():
    raise ValueError("upstream failed")


@flow
def map_with_allowed_failure_flow():
    upstream = failing_upstream.submit()
    return pair.map([1, 2], allow_failure(upstream)).result()


class TestMapAnnotations:
    def test_allow_failure_future_is_passed_whole_to_every_mapped_run(self):
        assert map_with_allowed_failure_flow() == [(1, "ValueError"), (2, "ValueError")]

    def test_annotation_methods_of_the_seed(self):
        from engine.utilities.annotations import quote, unmapped

        assert quote([1]).unquote() == [1]
        assert unmapped(1).rewrap(2) == unmapped(2)


@flow
def harnessed_flow():
    return "inside"


class TestTestHarness:
    def test_prefect_test_harness_runs_flows(self):
        from engine.testing.utilities import prefect_test_harness

        with prefect_test_harness():
            assert harnessed_flow() == "inside"
        assert harnessed_flow() == "inside"


class Scaler:
    """Tasks and flows as methods: ``self`` is bound like any method's."""

    def __init__(self, factor):
        self.factor = factor

    @task
    def scale(self, x):
        return self.factor * x

    @flow
    def scale_all(self, xs: list[int]):
        inline = self.scale(xs[0])
        submitted = self.scale.submit(xs[1]).result()
        mapped = self.scale.map(xs).result()
        return inline, submitted, mapped


class TestMethods:
    def test_tasks_and_flows_as_methods(self):
        assert Scaler(10).scale_all([1, 2]) == (10, 20, [10, 20])
        assert Scaler.scale.isasync is False and Scaler.scale_all.isasync is False


@task(persist_result=True, result_storage_key="doubled-{parameters[x]}.pickle")
def persisted_task(x):
    return 2 * x


@flow
def persisted_flow(basepath: str):
    from engine.filesystems import LocalFileSystem

    stored = persisted_task.with_options(result_storage=LocalFileSystem(basepath=basepath))
    return stored(1), stored.submit(2).result(), stored.map([3]).result()


class TestResultStorage:
    def test_task_result_storage_and_storage_key(self, tmp_path):
        assert persisted_flow(str(tmp_path)) == (2, 4, [6])
        names = sorted(path.name for path in tmp_path.iterdir())
        assert names == ["doubled-1.pickle", "doubled-2.pickle", "doubled-3.pickle"]


@task(cache_policy=FLOW_PARAMETERS)
def cached_per_flow_input(key, x):
    record(key, x)
    return x


# Records of this policy go to its key storage (the same path on the suite's workers).
POLICY_KEY_STORAGE = Path(tempfile.gettempdir()) / "celerity-semantics-key-storage"


@task(cache_policy=(INPUTS + TASK_SOURCE - "key").configure(key_storage=POLICY_KEY_STORAGE))
def cached_ignoring_key(key, x):
    record(key, x)
    return x


@task(cache_policy=CachePolicy.from_cache_key_fn(lambda ctx, params: f"fixed-{params['tag']}"))
def cached_by_fn(tag, value):
    return value


@flow
def cache_policies_flow(key: str, day: str, x: int = 5):
    a = cached_per_flow_input(key, 1, return_state=True)
    b = cached_per_flow_input(key, 2, return_state=True)
    c = cached_ignoring_key(f"{key}-first", x, return_state=True)
    d = cached_ignoring_key(f"{key}-second", x, return_state=True)
    e = cached_by_fn.submit(key, "first").result()
    f = cached_by_fn(key, "second")
    return a.name, b.name, b.result(), c.name, d.name, e, f


class TestCachePolicies:
    def test_flow_parameters_configure_subtract_and_from_cache_key_fn(self, key):
        # x differs per test: the key storage outlives the session (and its signing key).
        x = uuid.uuid4().int % 10**9
        assert cache_policies_flow(key, "monday", x) == (
            "Completed",
            "Cached",
            1,
            "Completed",
            "Cached",
            "first",
            "first",
        )
        assert recorded(key) == [1]
        assert recorded(f"{key}-second") == []


@task
def nested_leaf(x):
    return x * 10


@task
def nested_spawner(n):
    mapped = nested_leaf.map(range(n)).result()
    return mapped + [nested_leaf.submit(n).result()]


@flow
def nested_submission_flow():
    return nested_spawner.submit(2).result(), nested_spawner(1)


class TestNestedSubmission:
    def test_tasks_submit_and_map_from_inside_a_task(self):
        assert nested_submission_flow() == ([0, 10, 20], [0, 10])


@task
def returns_bare_completed():
    return Completed(message="done by hand")


@flow
def bare_completed_flow():
    state = returns_bare_completed(return_state=True)
    return state.message, state.result(), returns_bare_completed.submit().result()


class TestStatesMadeByHand:
    def test_a_returned_state_without_data_has_a_none_result(self):
        assert bare_completed_flow() == ("done by hand", None, None)


class RunSettings(BaseModel):
    retries: int = 0


class Connection:
    """A parameter type pydantic knows nothing about."""

    def __init__(self, name):
        self.name = name


@flow
def arbitrary_type_flow(conn: Connection, check: callable = None, model: RunSettings = None):
    return conn.name, model.retries if model else None


class TestArbitraryParameterTypes:
    def test_flow_parameters_of_any_class_are_checked_with_isinstance(self):
        assert arbitrary_type_flow(Connection("db")) == ("db", None)
        assert arbitrary_type_flow(Connection("db"), model={"retries": "2"}) == ("db", 2)
        with pytest.raises(ParameterTypeError, match="conn"):
            arbitrary_type_flow("not a connection")


class Answer(RunInput):
    text: str


@flow
async def async_pausing_flow():
    answer = await pause_flow_run(wait_for_input=Answer, timeout=30)
    return answer.text


class TestAsyncPause:
    def test_async_flow_awaits_pause_and_resume(self):
        import asyncio
        import threading

        outcome = {}

        def run_flow():
            outcome["value"] = asyncio.run(async_pausing_flow())

        async def resume(run_id):
            await resume_flow_run(run_id, run_input={"text": "hi"})

        thread = threading.Thread(target=run_flow, daemon=True)
        thread.start()
        asyncio.run(resume(h.paused_run_id("async-pausing-flow")))
        thread.join(20)
        assert outcome["value"] == "hi"
