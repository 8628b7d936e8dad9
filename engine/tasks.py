"""Tasks: the ``@task`` decorator and ``Task`` objects with ``submit`` and ``map``."""

from __future__ import annotations

import datetime
import inspect
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from engine.annotations import allow_failure, quote, unmapped
from engine.cache_policies import CacheKeyFnPolicy, task_input_hash
from engine.context import FlowRunContext, TaskRunContext
from engine.exceptions import MappingLengthMismatch, MappingMissingIterable, MissingContextError
from engine.futures import BaseFuture, FutureList
from engine.task_engine_types import ReturnType
from engine.utilities.callables import (
    DecoratedFunction,
    get_call_parameters,
    is_async_fn,
    is_async_generator_fn,
    is_generator_fn,
)

R = TypeVar("R")
Hook = Callable[..., Any]


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """A ``retry_delay_seconds`` callable: delays of factor * 2**n for each retry n.

    Example: ``@task(retries=3, retry_delay_seconds=exponential_backoff(2))``
    waits 2, 4, 8 seconds.
    """

    def delays(retries: int) -> list[float]:
        retries = min(retries, 50)  # 2**50 seconds is already forever
        return [backoff_factor * 2**attempt for attempt in range(retries)]

    return delays


def _normalise_delays(retries: int, delay: Any) -> float | list[float]:
    if callable(delay):
        delay = delay(retries)
    if isinstance(delay, (list, tuple)):
        if len(delay) > 50:
            raise ValueError("Cannot configure more than 50 retry delays per task.")
        return [float(d) for d in delay]
    return float(delay or 0)


class Task(DecoratedFunction, Generic[R]):
    """A function whose calls become tracked task runs.

    Call it to run inline, ``submit`` it for a future, ``map`` it over iterables.
    """

    def __init__(
        self,
        fn: Callable[..., R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | list[float] | Callable[[int], list[float]] | None = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        result_storage_key: str | None = None,
        cache_result_in_memory: bool = True,
        cache_key_fn: Callable[..., str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        cache_policy: Any = None,
        refresh_cache: bool | None = None,
        queue: str | None = None,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
        on_commit: list[Hook] | None = None,
        on_rollback: list[Hook] | None = None,
        viz_return_value: Any = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@task must decorate a function.")
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError("retry_jitter_factor must be >= 0.")
        self._options = {k: v for k, v in locals().items() if k not in ("self", "fn", "__class__")}
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn)
        self.tags = set(tags or ())
        self.version = version
        self.task_run_name = task_run_name
        self.retries = retries or 0
        self.retry_delay_seconds = _normalise_delays(self.retries, retry_delay_seconds)
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds = float(timeout_seconds) if timeout_seconds else None
        self.log_prints = log_prints
        self.persist_result = persist_result
        self.result_storage = result_storage
        # Accepted for ported code; values are always serialized with cloudpickle.
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        # Only a task that asks for caching caches (a cache_key_fn wins over a policy).
        self.cache_policy = CacheKeyFnPolicy(cache_key_fn) if cache_key_fn else cache_policy
        self.refresh_cache = refresh_cache
        self.queue = queue
        self.on_completion_hooks = list(on_completion or [])
        self.on_failure_hooks = list(on_failure or [])
        self.on_running_hooks = list(on_running or [])
        self.on_commit_hooks = list(on_commit or [])
        self.on_rollback_hooks = list(on_rollback or [])
        self.is_async = is_async_fn(fn) or is_async_generator_fn(fn)
        self.task_key = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', self.name)}"
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    # --- hook decorators ------------------------------------------------------------------------

    def on_completion(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (task, task_run, state) on completion."""
        return self._add_hook("on_completion", fn)

    def on_failure(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (task, task_run, state) on failure."""
        return self._add_hook("on_failure", fn)

    def on_running(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with (task, task_run, state) when running."""
        return self._add_hook("on_running", fn)

    def on_commit(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with the transaction when it commits.

        Runs only for task runs that completed inside a transaction (see
        ``engine.transactions``).
        """
        return self._add_hook("on_commit", fn)

    def on_rollback(self, fn: Hook) -> Hook:
        """Decorator form: add a hook called with the transaction when it rolls back.

        Example::

            @write_file.on_rollback
            def remove_file(txn):
                os.unlink(txn.get("path"))
        """
        return self._add_hook("on_rollback", fn)

    def resolve_run_name(self, parameters: dict[str, Any], run_id: uuid.UUID) -> str:
        """The task run's name: the template or callable, else ``name-xxx``."""
        template = self.task_run_name
        if template is None:
            return f"{self.name}-{run_id.hex[:3]}"
        if callable(template):
            from engine.context import naming_context

            wanted = inspect.signature(template).parameters
            with naming_context(self, parameters, run_id, kind="task"):
                return str(template(**{k: v for k, v in parameters.items() if k in wanted}))
        try:
            return template.format(**parameters)
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"task_run_name {template!r} names an unknown parameter: {exc}"
            ) from None

    # --- running ---------------------------------------------------------------------------

    def __call__(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Run the task inline and return its value (or State with ``return_state=True``)."""
        from engine import task_engine

        parameters = get_call_parameters(self.fn, args, kwargs)
        return_type: ReturnType = "state" if return_state else "result"
        if is_async_generator_fn(self.fn):
            return task_engine.run_generator_task_async(
                self, parameters, None, wait_for, return_type
            )
        if is_generator_fn(self.fn):
            return task_engine.run_generator_task_sync(
                self, parameters, None, wait_for, return_type
            )
        if self.is_async:
            return task_engine.run_task_async(self, parameters, None, wait_for, return_type)
        return task_engine.run_task_sync(self, parameters, None, wait_for, return_type)

    def submit(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Start a task run on the flow's task runner and return its future at once."""
        runner = _current_task_runner("submit")
        parameters = get_call_parameters(self.fn, args, kwargs)
        future = runner.submit(self, parameters, wait_for=wait_for)
        if return_state:
            future.wait()
            return future.state
        return future

    def map(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Submit one task run per element of the iterable arguments.

        Iterables must share one length; ``unmapped(x)`` and non-iterable values
        are passed whole to every run. Returns a list of futures.
        """
        runner = _current_task_runner("map")
        parameters = get_call_parameters(self.fn, args, kwargs, apply_defaults=False)
        futures = FutureList(runner.map(self, expand_map_parameters(parameters), wait_for=wait_for))
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"


def _current_task_runner(action: str) -> Any:
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.task_runner is None and TaskRunContext.get():
        return flow_ctx.runner_for_nested_submission()  # inside a task on a worker
    if flow_ctx is None or flow_ctx.task_runner is None:
        raise MissingContextError(
            f"Task.{action}() needs a flow run to submit to: call it inside a @flow function, "
            "or call the task directly to run it inline."
        )
    return flow_ctx.task_runner


def _is_iterable(value: Any) -> bool:
    if isinstance(value, (str, bytes, bytearray)):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def expand_map_parameters(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """One parameter dict per mapped call; raises if lengths differ or nothing is iterable."""
    iterables: dict[str, list[Any]] = {}
    static: dict[str, Any] = {}
    wrappers: dict[str, type] = {}
    for name, value in parameters.items():
        if isinstance(value, (allow_failure, quote)):
            wrappers[name] = type(value)
            value = value.unwrap()
        if isinstance(value, unmapped):
            static[name] = value.unwrap()
            continue
        if isinstance(value, BaseFuture):
            if name in wrappers:  # allow_failure(future) / quote(future): passed whole
                static[name] = value
                continue
            value = value.result()
        if _is_iterable(value):
            iterables[name] = list(value)
        else:
            static[name] = value
    if not iterables:
        raise MappingMissingIterable(
            "Task.map() received no iterable parameter; "
            f"got {sorted(parameters)}. Wrap a value in unmapped() to pass it whole."
        )
    lengths = {name: len(items) for name, items in iterables.items()}
    if len(set(lengths.values())) > 1:
        raise MappingLengthMismatch(
            f"Task.map() needs iterables of one length; got lengths {lengths}."
        )
    count = next(iter(lengths.values()))
    calls = []
    for index in range(count):
        call = {**static, **{name: items[index] for name, items in iterables.items()}}
        calls.append({k: wrappers[k](v) if k in wrappers else v for k, v in call.items()})
    return calls


@overload
def task(__fn: Callable[..., R]) -> Task[R]: ...


@overload
def task(__fn: None = None, **options: Any) -> Callable[[Callable[..., R]], Task[R]]: ...


def task(__fn: Callable[..., R] | None = None, **options: Any) -> Any:
    """Turn a function into a Task, with or without options.

    Example::

        @task(retries=2, retry_delay_seconds=1)
        def fetch(url: str) -> bytes: ...
    """
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)


__all__ = ["Task", "task", "exponential_backoff", "expand_map_parameters", "task_input_hash"]
