"""Flows: the ``@flow`` decorator and ``Flow`` objects."""

from __future__ import annotations

import inspect
import random
import uuid
import warnings
from collections.abc import Callable
from functools import cached_property
from typing import Any, Generic, TypeVar, overload

from pydantic import ConfigDict, PydanticUserError, TypeAdapter, ValidationError

from engine.exceptions import ParameterTypeError
from engine.utilities.callables import (
    DecoratedFunction,
    get_call_parameters,
    is_async_fn,
    is_async_generator_fn,
)

R = TypeVar("R")
Hook = Callable[..., Any]

_ADJECTIVES = (
    "amber",
    "brisk",
    "calm",
    "daring",
    "eager",
    "fleet",
    "gentle",
    "keen",
    "lively",
    "nimble",
    "quiet",
    "rapid",
    "steady",
    "swift",
    "vivid",
)
_NOUNS = (
    "badger",
    "comet",
    "falcon",
    "heron",
    "lynx",
    "marten",
    "otter",
    "plover",
    "quail",
    "raven",
    "stoat",
    "swallow",
    "tern",
    "wren",
    "zephyr",
)


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature, string annotations (``from __future__ import annotations``) resolved."""
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:  # an annotation names something not importable here: keep the strings
        return inspect.signature(fn)


def _adapter_for(annotation: Any) -> TypeAdapter[Any] | None:
    """A validator for ``annotation``; other classes are checked with isinstance.

    None when pydantic cannot validate the hint at all (it is then not checked).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns about hints that are not types
        try:
            return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
        except PydanticUserError:  # models, dataclasses and TypedDicts carry their own config
            pass
        except Exception:  # e.g. a hint naming something that is not a type
            return None
        try:
            return TypeAdapter(annotation)
        except Exception:  # pydantic cannot build a schema for this hint
            return None


def generate_run_name() -> str:
    """A readable random name such as ``swift-heron``."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}"


class Flow(DecoratedFunction, Generic[R]):
    """A function whose calls become tracked flow runs; tasks submitted inside are its children."""

    def __init__(
        self,
        fn: Callable[..., R],
        name: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        task_runner: Any = None,
        description: str | None = None,
        tags: list[str] | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        cache_result_in_memory: bool = True,
        log_prints: bool | None = None,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_cancellation: list[Hook] | None = None,
        on_crashed: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@flow must decorate a function.")
        self._options = {k: v for k, v in locals().items() if k not in ("self", "fn", "__class__")}
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        self.version = version
        self.flow_run_name = flow_run_name
        self.retries = retries or 0
        self.retry_delay_seconds = float(retry_delay_seconds or 0)
        self._task_runner = task_runner
        self.description = description or inspect.getdoc(fn)
        self.tags = set(tags or ())
        self.timeout_seconds = float(timeout_seconds) if timeout_seconds else None
        self.should_validate_parameters = validate_parameters
        self.persist_result = persist_result
        self.result_storage = result_storage
        # Accepted for ported code; values are always serialized with cloudpickle.
        self.result_serializer = result_serializer
        self.cache_result_in_memory = cache_result_in_memory
        self.log_prints = log_prints
        self.on_completion_hooks = list(on_completion or [])
        self.on_failure_hooks = list(on_failure or [])
        self.on_cancellation_hooks = list(on_cancellation or [])
        self.on_crashed_hooks = list(on_crashed or [])
        self.on_running_hooks = list(on_running or [])
        self.is_async = is_async_fn(fn) or is_async_generator_fn(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def task_runner(self) -> Any:
        """The runner for this flow's submitted tasks (from settings unless given)."""
        from engine.task_runners import TaskRunner

        runner = self._task_runner
        if runner is None:
            from engine.runner_selection import default_task_runner

            return default_task_runner()
        return runner() if isinstance(runner, type) and issubclass(runner, TaskRunner) else runner

    def on_completion(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (flow, flow_run, state) on completion."""
        return self._add_hook("on_completion", fn)

    def on_failure(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (flow, flow_run, state) on failure."""
        return self._add_hook("on_failure", fn)

    def on_cancellation(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (flow, flow_run, state) on cancellation."""
        return self._add_hook("on_cancellation", fn)

    def on_crashed(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (flow, flow_run, state) on a crash."""
        return self._add_hook("on_crashed", fn)

    def on_running(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (flow, flow_run, state) when running."""
        return self._add_hook("on_running", fn)

    # --- parameters --------------------------------------------------------------------------

    @cached_property
    def _adapters(self) -> dict[str, tuple[TypeAdapter[Any], Any]]:
        """Per annotated parameter: its validator and its default (never validated)."""
        adapters = {}
        for name, param in _signature(self.fn).parameters.items():
            if param.annotation is inspect.Parameter.empty:
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            adapter = _adapter_for(param.annotation)
            if adapter is not None:
                adapters[name] = (adapter, param.default)
        return adapters

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Parameters coerced to their type hints; ParameterTypeError names each bad one.

        A parameter left at its default is not validated (``x: str = None``
        is fine), as with pydantic models.
        """
        from engine.futures import BaseFuture
        from engine.states import State

        validated = dict(parameters)
        problems = []
        for name, (adapter, default) in self._adapters.items():
            value = parameters.get(name)
            if name not in parameters or value is default:
                continue
            if isinstance(value, (BaseFuture, State)):
                continue
            try:
                validated[name] = adapter.validate_python(value)
            except ValidationError as exc:
                reasons = "; ".join(error["msg"] for error in exc.errors())
                problems.append(f"parameter {name!r} (got {value!r}): {reasons}")
        if problems:
            raise ParameterTypeError(
                f"Flow {self.name!r} received invalid parameters: " + " | ".join(problems)
            )
        return validated

    def resolve_run_name(self, parameters: dict[str, Any], run_id: uuid.UUID) -> str:
        """The flow run's name: the template or callable, else a random readable name."""
        template = self.flow_run_name
        if template is None:
            return generate_run_name()
        if callable(template):
            from engine.context import naming_context

            wanted = inspect.signature(template).parameters
            with naming_context(self, parameters, run_id, kind="flow"):
                return str(template(**{k: v for k, v in parameters.items() if k in wanted}))
        try:
            return template.format(**parameters)
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"flow_run_name {template!r} names an unknown parameter: {exc}"
            ) from None

    # --- running ---------------------------------------------------------------------------

    def __call__(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Run the flow and return its value (or its State with ``return_state=True``).

        Async flows return a coroutine; generator flows return an iterator.
        """
        from engine.flow_engine import run_flow

        parameters = get_call_parameters(self.fn, args, kwargs)
        return run_flow(
            self, parameters, wait_for=wait_for, return_type="state" if return_state else "result"
        )

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


@overload
def flow(__fn: Callable[..., R]) -> Flow[R]: ...


@overload
def flow(__fn: None = None, **options: Any) -> Callable[[Callable[..., R]], Flow[R]]: ...


def flow(__fn: Callable[..., R] | None = None, **options: Any) -> Any:
    """Turn a function into a Flow, with or without options.

    Example::

        @flow(log_prints=True)
        def etl(day: str) -> int: ...
    """
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)


__all__ = ["Flow", "flow", "generate_run_name"]
