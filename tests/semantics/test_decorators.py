"""Spec item 1: @flow / @task forms and options, generators, with_options."""

import asyncio
import inspect

from engine import flow, task
from engine.context import FlowRunContext, TaskRunContext

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import flaky

# --- module-level definitions -------------------------------------------------


@task
def bare_task(x):
    return x * 2


@task()
def paren_task(x):
    return x * 3


@flow
def bare_flow(x):
    return bare_task(x) + paren_task(x)


@flow()
def paren_flow(x):
    return x + 1


@task
async def async_task(x):
    await asyncio.sleep(0)
    return x * 10


@task()
async def async_paren_task(x):
    return x + 100


@flow
async def async_flow(x):
    a = await async_task(x)
    b = await async_paren_task(x)
    return a + b


@flow()
async def async_paren_flow(x):
    return x - 1


@task
def counting_gen(key, n):
    ctx = TaskRunContext.get()
    record(f"{key}:task_run_id", str(ctx.task_run.id))
    for i in range(n):
        record(key, i)
        yield i


@task
async def async_counting_gen(key, n):
    for i in range(n):
        record(key, i)
        await asyncio.sleep(0)
        yield i


@flow
def consume_generator_flow(key):
    gen = counting_gen(key, 3)
    first = next(gen)
    seen_after_first = recorded(key)
    rest = list(gen)
    return first, seen_after_first, rest


@flow
async def consume_async_generator_flow(key):
    out = []
    async for value in async_counting_gen(key, 3):
        out.append(value)
    return out


@flow
def generator_flow(key, n):
    for i in range(n):
        record(key, i)
        yield i * 2


@task(name="custom-task-name", description="task description", version="t-1.2")
def named_task():
    ctx = TaskRunContext.get()
    return ctx.task.name, ctx.task_run.id


@flow(name="custom-flow-name", description="flow description", version="f-3.4")
def named_flow():
    ctx = FlowRunContext.get()
    return ctx.flow.name, named_task(), ctx.flow_run.id


def make_flow_run_name():
    return "callable-flow-run-name"


def make_task_run_name():
    return "callable-task-run-name"


@flow(flow_run_name="run-{x}")
def templated_run_name_flow(x):
    ctx = FlowRunContext.get()
    return ctx.flow_run.name, ctx.flow_run.id


@flow(flow_run_name=make_flow_run_name)
def callable_run_name_flow():
    ctx = FlowRunContext.get()
    return ctx.flow_run.name, ctx.flow_run.id


@task(task_run_name="tr-{x}-{label}")
def templated_name_task(x, label):
    ctx = TaskRunContext.get()
    return ctx.task_run.name, ctx.task_run.id


@task(task_run_name=make_task_run_name)
def callable_name_task():
    ctx = TaskRunContext.get()
    return ctx.task_run.name, ctx.task_run.id


@flow
def task_run_names_flow():
    return templated_name_task(5, "abc"), callable_name_task()


@task(tags=["task-level-tag"])
def tagged_option_task():
    return TaskRunContext.get().task_run.id


@flow(tags=["flow-level-tag"])
def tagged_option_flow():
    return FlowRunContext.get().flow_run.id, tagged_option_task()


@task
def serial_marker(key, i):
    record(key, ("start", i))
    record(key, ("end", i))
    return i


def _make_single_worker_runner():
    from engine.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=1)


@flow(task_runner=_make_single_worker_runner())
def single_worker_flow(key):
    futures = [serial_marker.submit(key, i) for i in range(4)]
    return [f.result() for f in futures]


flaky_with_retries = flaky.with_options(name="flaky-with-retries", retries=2, tags=["copied"])


@flow
def with_options_flow(key_original, key_copy):
    original = flaky(key_original, 2, return_state=True)
    copy = flaky_with_retries(key_copy, 2, return_state=True)
    return (
        original.state_details.task_run_id,
        copy.state_details.task_run_id,
        copy.result(),
    )


@flow(name="original-flow")
def original_flow():
    return FlowRunContext.get().flow.name


# --- tests ----------------------------------------------------------------------


class TestDecoratorForms:
    def test_task_and_flow_without_and_with_parentheses(self):
        assert bare_flow(2) == 4 + 6
        assert paren_flow(2) == 3

    def test_decorated_objects_keep_names(self):
        assert bare_task.name == "bare_task"
        assert paren_task.name == "paren_task"
        # Prefect's documented default flow name: the function name, "_" -> "-".
        assert bare_flow.name == "bare-flow"

    def test_async_task_and_flow_without_and_with_parentheses(self):
        assert asyncio.run(async_flow(2)) == 20 + 102
        assert asyncio.run(async_paren_flow(5)) == 4

    def test_async_flow_call_returns_coroutine(self):
        coro = async_paren_flow(1)
        assert inspect.iscoroutine(coro)
        assert asyncio.run(coro) == 0


class TestGeneratorRuns:
    def test_generator_task_called_directly_returns_iterator_of_values(self, key):
        gen = counting_gen(key, 3)
        assert not isinstance(gen, list)
        assert next(gen) == 0
        assert recorded(key) == [0]  # values come as they are produced
        assert list(gen) == [1, 2]
        assert recorded(key) == [0, 1, 2]
        (task_run_id,) = recorded(f"{key}:task_run_id")
        assert h.names(task_run_id) == ["Pending", "Running", "Completed"]

    def test_generator_task_inside_flow_yields_lazily(self, key):
        first, seen_after_first, rest = consume_generator_flow(key)
        assert first == 0
        assert seen_after_first == [0]
        assert rest == [1, 2]
        (task_run_id,) = recorded(f"{key}:task_run_id")
        assert h.names(task_run_id) == ["Pending", "Running", "Completed"]

    def test_async_generator_task(self, key):
        assert asyncio.run(consume_async_generator_flow(key)) == [0, 1, 2]
        assert recorded(key) == [0, 1, 2]

    def test_generator_flow_yields_values(self, key):
        gen = generator_flow(key, 3)
        assert next(gen) == 0
        assert recorded(key) == [0]
        assert list(gen) == [2, 4]
        assert recorded(key) == [0, 1, 2]


class TestNameDescriptionVersion:
    def test_task_options_are_exposed(self):
        assert named_task.name == "custom-task-name"
        assert named_task.description == "task description"
        assert named_task.version == "t-1.2"

    def test_flow_options_are_exposed(self):
        assert named_flow.name == "custom-flow-name"
        assert named_flow.description == "flow description"
        assert named_flow.version == "f-3.4"

    def test_names_visible_in_run_contexts_and_store(self):
        flow_name, (task_name, task_run_id), flow_run_id = named_flow()
        assert flow_name == "custom-flow-name"
        assert task_name == "custom-task-name"
        stored = h.flow_run(flow_run_id)
        assert stored.flow_name == "custom-flow-name"
        assert stored.flow_version == "f-3.4"
        assert h.names(flow_run_id) == ["Pending", "Running", "Completed"]
        assert h.names(task_run_id) == ["Pending", "Running", "Completed"]


class TestRunNames:
    def test_flow_run_name_template(self):
        name, flow_run_id = templated_run_name_flow(7)
        assert name == "run-7"
        assert h.flow_run(flow_run_id).name == "run-7"

    def test_flow_run_name_callable(self):
        name, flow_run_id = callable_run_name_flow()
        assert name == "callable-flow-run-name"
        assert h.flow_run(flow_run_id).name == "callable-flow-run-name"

    def test_task_run_name_template_and_callable(self):
        (templated, templated_id), (from_callable, callable_id) = task_run_names_flow()
        assert templated == "tr-5-abc"
        assert h.task_run(templated_id).name == "tr-5-abc"
        assert from_callable == "callable-task-run-name"
        assert h.task_run(callable_id).name == "callable-task-run-name"


class TestTagsOption:
    def test_task_and_flow_tags_recorded_on_runs(self):
        flow_run_id, task_run_id = tagged_option_flow()
        assert "flow-level-tag" in h.flow_run(flow_run_id).tags
        assert "task-level-tag" in h.task_run(task_run_id).tags


class TestTaskRunnerOption:
    def test_single_worker_runner_runs_tasks_one_at_a_time(self, key):
        assert single_worker_flow(key) == [0, 1, 2, 3]
        events = recorded(key)
        assert len(events) == 8
        # With one worker every start is immediately followed by its own end.
        for start, end in zip(events[::2], events[1::2], strict=True):
            assert start[0] == "start"
            assert end == ("end", start[1])


class TestWithOptions:
    def test_with_options_returns_a_copy_and_leaves_original_unchanged(self):
        assert flaky_with_retries is not flaky
        assert flaky_with_retries.name == "flaky-with-retries"
        assert flaky_with_retries.retries == 2
        assert "copied" in flaky_with_retries.tags
        assert flaky.name == "flaky"
        assert flaky.retries == 0
        assert "copied" not in flaky.tags

    def test_copy_behaves_with_new_options_original_without(self, key):
        original_id, copy_id, copy_result = with_options_flow(f"{key}:o", f"{key}:c")
        assert copy_result == 3
        assert h.names(copy_id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]
        assert h.names(original_id) == ["Pending", "Running", "Failed"]
        assert len(recorded(f"{key}:o")) == 1

    def test_flow_with_options(self):
        renamed = original_flow.with_options(name="renamed-flow", retries=1)
        assert renamed is not original_flow
        assert renamed.name == "renamed-flow"
        assert renamed.retries == 1
        assert original_flow.name == "original-flow"
        assert original_flow.retries == 0
        assert renamed() == "renamed-flow"
        assert original_flow() == "original-flow"
