"""Tasks: the ``@task`` decorator and ``Task`` objects with ``submit`` and ``map``."""

from __future__ import annotations

import datetime
import functools
import inspect
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

from engine.annotations import allow_failure, quote, unmapped
from engine.cache_policies import DEFAULT, NO_CACHE, CachePolicy, task_input_hash
from engine.config import current_settings
from engine.context import FlowRunContext, TaskRunContext
from engine.exceptions import MappingLengthMismatch, MappingMissingIterable, MissingContextError
from engine.futures import BaseFuture, FutureList
from engine.schemas import RunBase
from engine.states import State
from engine.task_engine_types import ReturnType
from engine.utilities.callables import (
    UNSET,
    DecoratedFunction,
    check_hooks,
    check_run_name,
    is_async_generator_fn,
    is_generator_fn,
    signature_of,
)

P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger("celerity.tasks")

_HOOK_KINDS = ("on_completion", "on_failure", "on_running", "on_commit", "on_rollback")

# with_options arguments for which None clears the option instead of keeping it.
_CLEARED_BY_NONE = frozenset(
    {
        "task_run_name",
        "retry_jitter_factor",
        "log_prints",
        "persist_result",
        "result_storage",
        "result_serializer",
        "result_storage_key",
        "refresh_cache",
    }
)
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
            raise ValueError("Can not configure more than 50 retry delays per task.")
        return [float(d) for d in delay]
    if delay is not None and not isinstance(delay, (int, float)):
        raise TypeError(
            "Invalid `retry_delay_seconds` provided; must be an int, float, list or callable. "
            f"Received type {type(delay)}"
        )
    return float(delay or 0)


def _check_task_options(
    name: Any, task_run_name: Any, retry_jitter_factor: Any, retry_condition_fn: Any
) -> None:
    """TypeError / ValueError at decoration for options that could never work."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"Expected string for task parameter 'name'; got {type(name).__name__}.")
    check_run_name("task_run_name", task_run_name)
    if retry_jitter_factor is not None and retry_jitter_factor < 0:
        raise ValueError("`retry_jitter_factor` must be >= 0.")
    if retry_condition_fn is not None and not callable(retry_condition_fn):
        raise TypeError(
            "Expected `retry_condition_fn` to be callable, "
            f"got {type(retry_condition_fn).__name__} instead."
        )


def _task_key(fn: Any) -> str:
    """``module.qualname`` of the function (of the class, for a callable object).

    The same in every process that imports the same code, so a flow retried
    elsewhere finds its completed task runs by key. (Prefect's keys are
    ``name-codehash``; examples and tools here read the qualified name.)
    """
    if getattr(fn, "__qualname__", None) is None:
        return f"{type(fn).__module__}.{type(fn).__qualname__}"
    return f"{getattr(fn, '__module__', '')}.{fn.__qualname__}"


def _source_of(fn: Any) -> str | None:
    """The function's source, kept on the task so it travels with a pickled task."""
    try:
        return inspect.getsource(fn)
    except (TypeError, OSError):  # callable objects, built-ins, code typed into a REPL
        return None


class DefaultWhenPersisted(CachePolicy):
    """DEFAULT for a task that leaves ``persist_result`` unset: its runs key the
    cache only when their results persist (the flow's ``persist_result``, else
    the ``persist_results_by_default`` setting), as in Prefect.

    A run that does not persist gets no key, so it neither reads nor writes
    cache records: a plain task costs the hot path one context lookup.
    Compares equal to DEFAULT, the policy it stands for.
    """

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any] | None,
        flow_parameters: dict[str, Any] | None,
        **kwargs: Any,
    ) -> str | None:
        if not _flow_persists():
            return None
        return DEFAULT.compute_key(task_ctx, inputs, flow_parameters, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DefaultWhenPersisted) or other == DEFAULT

    def __hash__(self) -> int:
        return hash(DefaultWhenPersisted)

    def __repr__(self) -> str:
        return f"DefaultWhenPersisted({DEFAULT!r})"


DEFAULT_WHEN_PERSISTED = DefaultWhenPersisted()


def resolve_cache_options(
    persist_result: bool | None,
    cache_policy: Any,
    cache_key_fn: Callable[..., str | None] | None,
    result_options: tuple[Any, Any, Any],
    settings: Any,
) -> tuple[bool | None, CachePolicy | None]:
    """``(persist_result, cache_policy)`` for a task's options, as Prefect resolves them.

    ``result_options`` is ``(result_storage_key, result_storage,
    result_serializer)``. Asking for caching or for where or how results are
    stored implies ``persist_result=True``. The policy defaults to DEFAULT
    (DEFAULT_WHEN_PERSISTED while persistence is unset; NO_CACHE with the
    ``default_no_cache`` setting); ``cache_key_fn`` wins
    over a policy; ``persist_result=False`` or the ``disable_caching``
    setting makes it NO_CACHE; a ``result_storage_key`` names the result
    instead of a policy.
    """
    storage_key = result_options[0]
    if cache_policy is UNSET and settings.default_no_cache:
        cache_policy = NO_CACHE
    if cache_policy is not UNSET and cache_key_fn is not None:
        logger.warning(
            "Both `cache_policy` and `cache_key_fn` are set; `cache_key_fn` will be used."
        )
    if cache_key_fn is not None:
        cache_policy = CachePolicy.from_cache_key_fn(cache_key_fn)
    caches = cache_policy is not UNSET and cache_policy is not None and cache_policy != NO_CACHE
    if persist_result is None and (caches or any(o is not None for o in result_options)):
        persist_result = True
    if settings.disable_caching:
        cache_policy = NO_CACHE
    if persist_result is False:
        if cache_policy not in (UNSET, None, NO_CACHE):
            logger.warning("Ignoring `cache_policy` because `persist_result` is False.")
        return False, None if cache_policy is None else NO_CACHE
    if cache_policy is UNSET:
        if persist_result is None:
            return None, DEFAULT_WHEN_PERSISTED
        return persist_result, DEFAULT if storage_key is None else None
    if storage_key is not None and cache_policy != NO_CACHE:
        return persist_result, None  # the run's storage key names its result instead
    return persist_result, cache_policy


class Task(DecoratedFunction, Generic[P, R]):
    """A function whose calls become tracked task runs.

    Call it to run inline, ``submit`` it for a future, ``map`` it over iterables.
    Generic in the function's parameters and return type: ``Task[[int], str]``.
    """

    def __init__(
        self,
        fn: Callable[P, R] | classmethod[Any, P, R] | staticmethod[P, R],
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
        cache_policy: Any = UNSET,
        refresh_cache: bool | None = None,
        queue: str | None = None,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
        on_commit: list[Hook] | None = None,
        on_rollback: list[Hook] | None = None,
        viz_return_value: Any = None,
    ) -> None:
        self._options = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        hooks = {kind: check_hooks(kind, self._options[kind], "task") for kind in _HOOK_KINDS}
        function = self._take_function(fn, "task")
        _check_task_options(name, task_run_name, retry_jitter_factor, retry_condition_fn)
        self.name = name or getattr(function, "__name__", None) or type(function).__name__
        self.description = description or inspect.getdoc(function)
        self.tags = set(tags or ())
        self.version = version
        self.task_run_name = task_run_name
        settings = current_settings()
        self.retries = retries if retries is not None else settings.task_default_retries
        if retry_delay_seconds is None:
            retry_delay_seconds = settings.task_default_retry_delay_seconds
        self.retry_delay_seconds = _normalise_delays(self.retries, retry_delay_seconds)
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds = float(timeout_seconds) if timeout_seconds else None
        self.log_prints = log_prints
        self.persist_result, self.cache_policy = resolve_cache_options(
            persist_result,
            cache_policy,
            cache_key_fn,
            (result_storage_key, result_storage, result_serializer),
            settings,
        )
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        self.queue = queue
        self._set_hooks(hooks)
        self.viz_return_value = viz_return_value
        self.task_key = _task_key(function)
        self.source_code = _source_of(function)

    def with_options(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        task_run_name: str | Callable[..., str] | None = UNSET,
        retries: int | None = UNSET,
        retry_delay_seconds: float | list[float] | Callable[[int], list[float]] | None = UNSET,
        retry_jitter_factor: float | None = UNSET,
        retry_condition_fn: Callable[..., bool] | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = UNSET,
        persist_result: bool | None = UNSET,
        result_storage: Any = UNSET,
        result_serializer: Any = UNSET,
        result_storage_key: str | None = UNSET,
        cache_result_in_memory: bool | None = None,
        cache_key_fn: Callable[..., str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        cache_policy: Any = UNSET,
        refresh_cache: bool | None = UNSET,
        queue: str | None = None,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
        on_commit: list[Hook] | None = None,
        on_rollback: list[Hook] | None = None,
        viz_return_value: Any = None,
    ) -> Task[P, R]:
        """A copy with the given options changed; the original is untouched.

        An option left out keeps its value (tags are copied); options whose
        default here is UNSET can be cleared with None.
        """
        overrides = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        copied = self._copy_with(overrides, _CLEARED_BY_NONE)
        if tags is None:
            copied.tags = set(self.tags)
        return copied

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
        check_run_name("task_run_name", template)  # it may have been set after decoration
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

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(
        self, *args: Any, return_state: Literal[True], wait_for: Any = None, **kwargs: Any
    ) -> State[Any]: ...

    def __call__(
        self, *args: Any, return_state: Any = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Run the task inline and return its value (or State with ``return_state=True``)."""
        from engine import task_engine

        parameters = self._call_parameters(args, kwargs)
        return_type: ReturnType = "state" if return_state else "result"
        run: Callable[..., Any]
        if is_async_generator_fn(self.fn):
            run = task_engine.run_generator_task_async
        elif is_generator_fn(self.fn):
            run = task_engine.run_generator_task_sync
        elif self.is_async:
            run = task_engine.run_task_async
        else:
            run = task_engine.run_task_sync
        return run(self, parameters=parameters, wait_for=wait_for, return_type=return_type)

    @overload
    def submit(self, *args: P.args, **kwargs: P.kwargs) -> BaseFuture[Any]: ...

    @overload
    def submit(
        self, *args: Any, return_state: Literal[True], wait_for: Any = None, **kwargs: Any
    ) -> State[Any]: ...

    def submit(
        self, *args: Any, return_state: Any = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Start a task run on the flow's task runner and return its future at once."""
        runner = _current_task_runner("submit")
        parameters = self._call_parameters(args, kwargs)
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
        are passed whole to every run. A future or state is mapped over its
        result; the items of ``**kwargs`` are mapped like named parameters.
        Returns a list of futures.
        """
        runner = _current_task_runner("map")
        parameters = self._call_parameters(args, kwargs, apply_defaults=False)
        calls = expand_map_parameters(parameters, var_keyword=_var_keyword_name(self.fn))
        futures = FutureList(runner.map(self, calls, wait_for=wait_for))
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"


def _flow_persists() -> bool:
    """Whether the active flow run persists results (the setting when it does not say)."""
    flow_ctx = FlowRunContext.get()
    flow = flow_ctx.flow if flow_ctx is not None else None
    if flow is not None and flow.persist_result is not None:
        return bool(flow.persist_result)
    return bool(current_settings().persist_results_by_default)


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


def _var_keyword_name(fn: Callable[..., Any]) -> str | None:
    for parameter in signature_of(fn).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            return parameter.name
    return None


def _map_source(value: Any) -> Any:
    """What a mapped argument stands for: a future's or a state's result, else itself."""
    if isinstance(value, BaseFuture):
        return value.result()
    if isinstance(value, State):
        return value.result(_sync=True)
    return value


def expand_map_parameters(
    parameters: dict[str, Any], var_keyword: str | None = None
) -> list[dict[str, Any]]:
    """One parameter dict per mapped call; raises if lengths differ or nothing is iterable.

    ``var_keyword`` names the function's ``**kwargs`` parameter, whose items
    are mapped (or passed whole) one by one and gathered back per call.
    """
    extra = dict(parameters.pop(var_keyword, None) or {}) if var_keyword else {}
    parameters = {**parameters, **extra}
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
        if name in wrappers and isinstance(value, (BaseFuture, State)):
            static[name] = value  # allow_failure(future) / quote(future): passed whole
            continue
        value = _map_source(value)
        if isinstance(value, RunBase):
            # A run record is one value (it iterates over its fields): passed whole,
            # where the input walk rejects it unless it is wrapped (see task_inputs).
            static[name] = value
        elif _is_iterable(value):
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
        call = {k: wrappers[k](v) if k in wrappers else v for k, v in call.items()}
        if var_keyword is not None:
            call[var_keyword] = {k: call.pop(k) for k in extra}
        calls.append(call)
    return calls


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    __fn: None = None,
    *,
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
    cache_policy: Any = UNSET,
    refresh_cache: bool | None = None,
    queue: str | None = None,
    on_completion: list[Hook] | None = None,
    on_failure: list[Hook] | None = None,
    on_running: list[Hook] | None = None,
    on_commit: list[Hook] | None = None,
    on_rollback: list[Hook] | None = None,
    viz_return_value: Any = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    __fn: Any = None,
    *,
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
    cache_policy: Any = UNSET,
    refresh_cache: bool | None = None,
    queue: str | None = None,
    on_completion: list[Hook] | None = None,
    on_failure: list[Hook] | None = None,
    on_running: list[Hook] | None = None,
    on_commit: list[Hook] | None = None,
    on_rollback: list[Hook] | None = None,
    viz_return_value: Any = None,
) -> Any:
    """Turn a function into a Task, with or without options.

    Example::

        @task(retries=2, retry_delay_seconds=1)
        def fetch(url: str) -> bytes: ...
    """
    options = {k: v for k, v in locals().items() if k != "__fn"}
    if __fn is not None:
        return Task(__fn, **options)
    return functools.partial(Task, **options)


__all__ = [
    "Task",
    "expand_map_parameters",
    "exponential_backoff",
    "resolve_cache_options",
    "task",
    "task_input_hash",
]
