"""Spec item 10: run contexts, tags, and context serialization across processes."""

import multiprocessing

import pytest

from engine import flow, tags, task
from engine.context import (
    FlowRunContext,
    TaskRunContext,
    get_run_context,
    hydrated_context,
    serialize_context,
)
from engine.exceptions import MissingContextError

from . import _helpers as h
from ._spawn_helpers import report_context


@task
def task_context_probe(x, y=5):
    ctx = TaskRunContext.get()
    run_ctx = get_run_context()
    return {
        "task_name": ctx.task.name,
        "task_run_id": ctx.task_run.id,
        "task_run_name": ctx.task_run.name,
        "run_count": ctx.task_run.run_count,
        "parameters": ctx.parameters,
        "tags": sorted(ctx.task_run.tags),
        "run_context_is_task": isinstance(run_ctx, TaskRunContext),
        "flow_run_id_seen": FlowRunContext.get().flow_run.id if FlowRunContext.get() else None,
    }


@task(tags=["task-tag"])
def tagged_probe():
    ctx = TaskRunContext.get()
    return ctx.task_run.id, sorted(ctx.task_run.tags)


@flow(name="context-probe-flow")
def flow_context_probe(a, b="bee"):
    ctx = FlowRunContext.get()
    return {
        "flow_name": ctx.flow.name,
        "flow_run_id": ctx.flow_run.id,
        "flow_run_name": ctx.flow_run.name,
        "parameters": ctx.flow_run.parameters,
        "run_context_is_flow": isinstance(get_run_context(), FlowRunContext),
        "task_context_in_flow": TaskRunContext.get(),
        "task": task_context_probe(a),
    }


@flow
def tags_flow():
    with tags("a"):
        with tags("b"):
            nested = tagged_probe()
            submitted = tagged_probe.submit().result()
        only_a = tagged_probe()
    untagged = tagged_probe()
    return nested, submitted, only_a, untagged


@flow
def flow_run_tags_flow():
    return FlowRunContext.get().flow_run.id, sorted(FlowRunContext.get().flow_run.tags)


@flow
def spawn_round_trip_flow():
    with tags("ctx-tag"):
        serialized = serialize_context()
    mp = multiprocessing.get_context("spawn")
    queue = mp.Queue()
    process = mp.Process(target=report_context, args=(serialized, queue))
    process.start()
    try:
        report = queue.get(timeout=60)
    finally:
        process.join(timeout=60)
    ctx = FlowRunContext.get()
    return {"report": report, "flow_run_id": str(ctx.flow_run.id), "name": ctx.flow_run.name}


@flow
def in_process_round_trip_flow():
    serialized = serialize_context()
    return FlowRunContext.get().flow_run.id, serialized


class TestFlowRunContext:
    def test_flow_context_fields(self):
        result = flow_context_probe(1)
        assert result["flow_name"] == "context-probe-flow"
        assert result["parameters"] == {"a": 1, "b": "bee"}
        assert result["run_context_is_flow"] is True
        assert result["task_context_in_flow"] is None
        assert h.flow_run(result["flow_run_id"]).name == result["flow_run_name"]
        assert h.names(result["flow_run_id"]) == ["Pending", "Running", "Completed"]

    def test_contexts_are_none_outside_runs(self):
        assert FlowRunContext.get() is None
        assert TaskRunContext.get() is None

    def test_get_run_context_outside_run_raises(self):
        with pytest.raises(
            MissingContextError, match=r"^No run context available\. You are not in a flow or task"
        ):
            get_run_context()
        assert issubclass(MissingContextError, RuntimeError)


class TestTaskRunContext:
    def test_task_context_fields(self):
        result = flow_context_probe(7)
        probe = result["task"]
        assert probe["task_name"] == "task_context_probe"
        assert probe["run_count"] == 1
        assert probe["parameters"] == {"x": 7, "y": 5}
        assert probe["run_context_is_task"] is True
        assert probe["flow_run_id_seen"] == result["flow_run_id"]
        stored = h.task_run(probe["task_run_id"])
        assert stored.name == probe["task_run_name"]
        assert stored.flow_run_id == result["flow_run_id"]
        assert h.names(probe["task_run_id"]) == ["Pending", "Running", "Completed"]

    def test_task_context_outside_flow(self):
        probe = task_context_probe(3)
        assert probe["parameters"] == {"x": 3, "y": 5}
        assert probe["run_context_is_task"] is True


class TestTags:
    def test_nested_tags_and_task_tags_merge(self):
        nested, submitted, only_a, untagged = tags_flow()
        assert set(nested[1]) == {"a", "b", "task-tag"}
        assert set(submitted[1]) == {"a", "b", "task-tag"}
        assert set(only_a[1]) == {"a", "task-tag"}
        assert set(untagged[1]) == {"task-tag"}
        assert set(h.task_run(nested[0]).tags) == {"a", "b", "task-tag"}
        assert set(h.task_run(submitted[0]).tags) == {"a", "b", "task-tag"}

    def test_tags_apply_to_flow_runs(self):
        with tags("outer"):
            flow_run_id, flow_tags = flow_run_tags_flow()
        assert "outer" in flow_tags
        assert "outer" in h.flow_run(flow_run_id).tags


class TestContextSerialization:
    def test_round_trip_through_spawned_process(self):
        outcome = spawn_round_trip_flow()
        report = outcome["report"]
        assert "error" not in report, report
        assert report["flow_run_id"] == outcome["flow_run_id"]
        assert report["flow_run_name"] == outcome["name"]
        assert "ctx-tag" in report["tags"]

    def test_hydrated_context_in_process(self):
        flow_run_id, serialized = in_process_round_trip_flow()
        assert FlowRunContext.get() is None
        with hydrated_context(serialized):
            ctx = FlowRunContext.get()
            assert ctx is not None
            assert ctx.flow_run.id == flow_run_id
        assert FlowRunContext.get() is None


@task(retries=2)
def attempt_start_times(key):
    from ._side_effects import record, recorded

    record(key, TaskRunContext.get().start_time)
    if len(recorded(key)) < 3:
        raise ValueError("again")
    return "done"


@flow
def start_time_flow(key):
    return attempt_start_times(key), FlowRunContext.get().start_time


class TestRunStartTime:
    def test_each_task_attempt_has_a_later_start_time(self, key):
        from ._side_effects import recorded

        # When a task runs three attempts
        value, flow_started = start_time_flow(key)
        assert value == "done"
        # Then each attempt's context says when it started, in order, after the flow's
        times = recorded(key)
        assert len(times) == 3
        assert flow_started < times[0] < times[1] < times[2]
