"""Run contexts backed by contextvars, and their serialization across processes.

``FlowRunContext`` and ``TaskRunContext`` say which run the current code
belongs to; ``tags()`` adds tags to every run created inside it.
``serialize_context()`` turns the current context into JSON-friendly data that
``hydrated_context()`` re-enters in another process (a Celery worker, a spawned
subprocess).
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from engine.exceptions import MissingContextError, Pause
from engine.results import storage_for_url
from engine.schemas import FlowRun, TaskRun
from engine.states import now
from engine.utilities.importing import from_reference, to_reference

C = TypeVar("C", bound="ContextModel")


class ContextModel(BaseModel):
    """A context entered with ``with``; ``get()`` returns the innermost one of its kind.

    A pydantic model: subclasses declare their fields (types are checked) and
    may name their context variable ``__var__``; one is made otherwise. An
    object is entered once at a time (enter a ``model_copy()`` to nest it).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    __var__: ClassVar[contextvars.ContextVar[Any]]
    _var: ClassVar[contextvars.ContextVar[Any]]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        var = cls.__dict__.get("__var__") or contextvars.ContextVar(cls.__name__)
        cls.__var__ = var
        cls._var = var  # the name Celerity's own modules use

    # The context variable's token is kept in the instance dict under a name
    # no field can have: a pydantic private attribute costs microseconds to
    # set up and to reach, and a context is entered for every task run.
    def __enter__(self: C) -> C:
        if self.__dict__.get("_token") is not None:
            raise RuntimeError(
                "Context already entered. Context enter calls cannot be nested; "
                "enter a model_copy() instead."
            )
        self.__dict__["_token"] = self.__var__.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        token = self.__dict__.pop("_token", None)
        if token is None:
            raise RuntimeError("Asymmetric use of context. Context exit called without an enter.")
        self.__var__.reset(token)

    @classmethod
    def get(cls: type[C]) -> C | None:
        """The innermost active context of this kind, or None."""
        return cls.__var__.get(None)

    def model_copy(self: C, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> C:
        """A copy that has not been entered (so it can be entered while this one is)."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("_token", None)
        return copy


class RunContext(ContextModel):
    """What flow and task run contexts share: when the run (attempt) started.

    ``client`` and ``result_store`` are accepted where Prefect code passes
    them (its API client, its result store) and kept as given; the engines
    use the run store and ``result_storage``.
    """

    start_time: datetime.datetime = Field(default_factory=now)
    client: Any = None
    result_store: Any = None


class FlowRunSuspensionRequest:
    """A request that the flow run suspend where it next waits on a future.

    Code inside the run marks it (``mark_requested(Suspended())``); waiting
    on a future then raises ``Pause`` with that state.
    """

    def __init__(self) -> None:
        self.state: Any = None

    def mark_requested(self, state: Any) -> None:
        """Ask the flow run to suspend into ``state``."""
        self.state = state

    def raise_if_requested(self) -> None:
        """Raise ``Pause`` if a suspension was requested."""
        if self.state is not None:
            raise Pause(f"Flow run suspension requested: {self.state.name}", state=self.state)


class FlowRunContext(RunContext):
    """What code inside a flow run can see: the flow, its run and its task runner."""

    flow: Any = None
    flow_run: Any = None
    parameters: Any = None
    task_runner: Any = None
    result_storage: Any = None
    log_prints: bool = False
    flow_run_suspension_request: Any = Field(default_factory=FlowRunSuspensionRequest)
    _owned_runner: Any = PrivateAttr(None)

    def model_post_init(self, context: Any) -> None:
        if self.parameters is None:
            self.parameters = dict(self.flow_run.parameters) if self.flow_run else {}

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


class TaskRunContext(RunContext):
    """What code inside a task run can see: the task, its run and its parameters.

    ``start_time`` is when the current attempt started.
    """

    task: Any = None
    task_run: Any = None
    parameters: Any = Field(default_factory=dict)
    result_storage: Any = None
    log_prints: bool = False


class TagsContext(ContextModel):
    """The tags applied to runs created inside ``tags(...)``."""

    current_tags: set[str] = Field(default_factory=set)

    @classmethod
    def get(cls) -> TagsContext:
        return cls.__var__.get(None) or TagsContext()


@contextmanager
def tags(*new_tags: str) -> Iterator[set[str]]:
    """Add tags to every flow run and task run created inside this block.

    Example::

        with tags("etl", "nightly"):
            my_task.submit()
    """
    current = TagsContext.get().current_tags
    merged = current | set(new_tags)
    with TagsContext(current_tags=merged):
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
        # Prefect's own form keeps tags under "tags_context"
        tag_names = serialized.get("tags") or (serialized.get("tags_context") or {}).get(
            "current_tags"
        )
        if tag_names:
            stack.enter_context(tags(*tag_names))
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


# A worker hydrates one envelope's context for each task run it carries: the
# flow run in it is validated once and shared (contexts only read their flow run).
_last_flow_run: tuple[Any, FlowRun] | None = None


def _flow_run_from(data: Any) -> FlowRun:
    global _last_flow_run
    last = _last_flow_run
    if last is not None and last[0] is data:
        return last[1]
    flow_run = FlowRun.model_validate(data)
    _last_flow_run = (data, flow_run)
    return flow_run


def _flow_context_from(serialized: dict[str, Any]) -> FlowRunContext:
    storage_url = serialized.get("result_storage")
    return FlowRunContext(
        flow=_load(serialized.get("flow")),
        flow_run=_flow_run_from(serialized["flow_run"]),
        result_storage=storage_for_url(storage_url) if storage_url else None,
        log_prints=serialized.get("log_prints", False),
    )


def _task_context_from(serialized: dict[str, Any]) -> TaskRunContext:
    return TaskRunContext(
        task=_load(serialized.get("task")),
        task_run=TaskRun.model_validate(serialized["task_run"]),
    )


__all__ = [
    "ContextModel",
    "FlowRunContext",
    "FlowRunSuspensionRequest",
    "TaskRunContext",
    "TagsContext",
    "tags",
    "get_run_context",
    "naming_context",
    "serialize_context",
    "hydrated_context",
]
