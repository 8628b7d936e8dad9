"""Run contexts backed by contextvars, and their serialization across processes.

``FlowRunContext`` and ``TaskRunContext`` say which run the current code
belongs to; ``tags()`` adds tags to every run created inside it.
``serialize_context()`` turns the current context into JSON-friendly data that
``hydrated_context()`` re-enters in another process (a Celery worker, a spawned
subprocess).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, ClassVar, TypeVar

from engine.exceptions import MissingContextError
from engine.results import ResultStorage, storage_for_url
from engine.schemas import FlowRun, TaskRun
from engine.utilities.importing import from_reference, to_reference

C = TypeVar("C", bound="ContextModel")


class ContextModel:
    """A context entered with ``with``; ``get()`` returns the innermost one."""

    _var: ClassVar[contextvars.ContextVar[Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._var = contextvars.ContextVar(cls.__name__)

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token[Any]] = []

    def __enter__(self: C) -> C:
        self._tokens.append(self._var.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        self._var.reset(self._tokens.pop())

    @classmethod
    def get(cls: type[C]) -> C | None:
        """The innermost active context of this kind, or None."""
        return cls._var.get(None)


class FlowRunContext(ContextModel):
    """What code inside a flow run can see: the flow, its run and its task runner."""

    def __init__(
        self,
        flow: Any,
        flow_run: FlowRun,
        parameters: dict[str, Any] | None = None,
        task_runner: Any = None,
        result_storage: ResultStorage | None = None,
        log_prints: bool = False,
    ) -> None:
        super().__init__()
        self.flow = flow
        self.flow_run = flow_run
        self.parameters = parameters if parameters is not None else dict(flow_run.parameters)
        self.task_runner = task_runner
        self.result_storage = result_storage
        self.log_prints = log_prints
        self._owned_runner: Any = None

    def runner_for_nested_submission(self) -> Any:
        """The task runner, started here on first use when the context has none.

        A task running on a Celery worker sees its flow run's context without
        the flow's runner; tasks it submits run on a thread runner that this
        context owns and drains when it exits.
        """
        if self.task_runner is None:
            from engine.task_runners import ThreadPoolTaskRunner

            self._owned_runner = ThreadPoolTaskRunner().__enter__()
            self.task_runner = self._owned_runner
        return self.task_runner

    def __exit__(self, *exc: object) -> None:
        runner, self._owned_runner = self._owned_runner, None
        try:
            if runner is not None:
                self.task_runner = None
                runner.__exit__(*exc)
        finally:
            super().__exit__(*exc)


class TaskRunContext(ContextModel):
    """What code inside a task run can see: the task, its run and its parameters."""

    def __init__(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any] | None = None,
        result_storage: ResultStorage | None = None,
        log_prints: bool = False,
    ) -> None:
        super().__init__()
        self.task = task
        self.task_run = task_run
        self.parameters = parameters or {}
        self.result_storage = result_storage
        self.log_prints = log_prints


class TagsContext(ContextModel):
    """The tags applied to runs created inside ``tags(...)``."""

    def __init__(self, current_tags: set[str] | None = None) -> None:
        super().__init__()
        self.current_tags = current_tags or set()

    @classmethod
    def get(cls) -> TagsContext:
        return cls._var.get(None) or TagsContext()


@contextmanager
def tags(*new_tags: str) -> Iterator[set[str]]:
    """Add tags to every flow run and task run created inside this block.

    Example::

        with tags("etl", "nightly"):
            my_task.submit()
    """
    current = TagsContext.get().current_tags
    merged = current | set(new_tags)
    with TagsContext(merged):
        yield merged


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The task run context if inside a task, else the flow run context.

    Raises MissingContextError outside any run.
    """
    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        return task_ctx
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None:
        return flow_ctx
    raise MissingContextError(
        "No run context available. You are not in a flow or task run context."
    )


@contextmanager
def naming_context(
    obj: Any, parameters: dict[str, Any], run_id: Any, kind: str = "task"
) -> Iterator[None]:
    """A provisional run context while a run-name callable runs.

    The seed's docs name runs with callables that read ``runtime.task_run`` /
    ``runtime.flow_run`` (e.g. the parameters); the run record does not exist
    yet, so this context describes the run about to be created.
    """
    flow_ctx = FlowRunContext.get()
    context: ContextModel
    if kind == "task":
        flow_run_id = flow_ctx.flow_run.id if flow_ctx is not None else None
        task_run = TaskRun(id=run_id, name=obj.name, flow_run_id=flow_run_id, tags=sorted(obj.tags))
        context = TaskRunContext(task=obj, task_run=task_run, parameters=parameters)
    else:
        flow_run = FlowRun(id=run_id, name=obj.name, flow_name=obj.name, parameters={})
        context = FlowRunContext(flow=obj, flow_run=flow_run, parameters=parameters)
    with context:
        yield


def serialize_context() -> dict[str, Any]:
    """The current run context as JSON-friendly data for another process."""
    from engine.store import get_store

    flow_ctx = FlowRunContext.get()
    task_ctx = TaskRunContext.get()
    data: dict[str, Any] = {
        "store_url": get_store().url,
        "tags": sorted(TagsContext.get().current_tags),
    }
    if flow_ctx is not None:
        data["flow_run"] = flow_ctx.flow_run.model_dump(mode="json")
        data["flow"] = _reference_or_none(flow_ctx.flow)
        data["log_prints"] = flow_ctx.log_prints
        storage = flow_ctx.result_storage
        data["result_storage"] = storage.url if storage else None
    if task_ctx is not None:
        data["task_run"] = task_ctx.task_run.model_dump(mode="json")
        data["task"] = _reference_or_none(task_ctx.task)
    return data


def _reference_or_none(obj: Any) -> dict[str, str] | None:
    if obj is None:
        return None
    try:
        return to_reference(obj)
    except Exception:  # an unsendable flow object should not block the context
        return None


@contextmanager
def hydrated_context(serialized: dict[str, Any] | None = None) -> Iterator[None]:
    """Re-enter a context produced by ``serialize_context`` in this process."""
    serialized = serialized or {}
    with ExitStack() as stack:
        _use_serialized_store(serialized)
        if serialized.get("tags"):
            stack.enter_context(tags(*serialized["tags"]))
        if "flow_run" in serialized:
            stack.enter_context(_flow_context_from(serialized))
        if "task_run" in serialized:
            stack.enter_context(_task_context_from(serialized))
        yield


def _use_serialized_store(serialized: dict[str, Any]) -> None:
    from engine.store import get_store, set_store, store_for_url

    url = serialized.get("store_url")
    if url and get_store().url != url and not url.startswith("memory://"):
        set_store(store_for_url(url))


def _load(ref: dict[str, str] | None) -> Any:
    return from_reference(ref) if ref else None


def _flow_context_from(serialized: dict[str, Any]) -> FlowRunContext:
    storage_url = serialized.get("result_storage")
    return FlowRunContext(
        flow=_load(serialized.get("flow")),
        flow_run=FlowRun.model_validate(serialized["flow_run"]),
        result_storage=storage_for_url(storage_url) if storage_url else None,
        log_prints=serialized.get("log_prints", False),
    )


def _task_context_from(serialized: dict[str, Any]) -> TaskRunContext:
    return TaskRunContext(
        task=_load(serialized.get("task")),
        task_run=TaskRun.model_validate(serialized["task_run"]),
    )


__all__ = [
    "FlowRunContext",
    "TaskRunContext",
    "TagsContext",
    "tags",
    "get_run_context",
    "naming_context",
    "serialize_context",
    "hydrated_context",
]
