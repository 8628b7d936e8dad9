"""Flows: the ``@flow`` decorator and ``Flow`` objects."""

from __future__ import annotations

import functools
import inspect
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from pydantic import ConfigDict, PydanticUserError, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from engine.config import current_settings
from engine.entrypoints import (
    DEFAULT_ARGUMENTS,
    decorator_arguments,
    safe_load_flow,
    split_entrypoint,
)
from engine.exceptions import InvalidNameError, MissingFlowError, ParameterTypeError, ScriptError
from engine.utilities.asyncutils import async_dispatch, run_coro_sync
from engine.utilities.callables import (
    UNBOUND,
    UNSET,
    DecoratedFunction,
    check_hooks,
    check_run_name,
    signature_of,
)
from engine.utilities.hashing import file_hash
from engine.utilities.importing import SCRIPT_MODULE_PREFIX, import_object

if TYPE_CHECKING:
    from engine.states import State

P = ParamSpec("P")
R = TypeVar("R")
Hook = Callable[..., Any]


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
    """A readable random name such as ``modern-nuthatch``.

    Two words from coolname's vocabulary (hundreds of thousands of pairs, as
    Prefect's run names), so names rarely repeat within a store's retention;
    ``celerity runs`` commands accept a name where it is unique.
    """
    import coolname  # loads its word lists: only when a flow run is named

    return str(coolname.generate_slug(2))


# Characters a flow name may not contain (they break URLs and file names).
BANNED_NAME_CHARACTERS = ("/", "%", "&", ">", "<")

# Names pydantic's function validation keeps for itself: a flow taking one
# cannot have its parameters validated.
_VALIDATOR_RESERVED = frozenset(
    {"v__args", "v__kwargs", "v__positional_only", "v__duplicate_kwargs"}
)

# with_options arguments for which None clears the option instead of keeping it.
_CLEARED_BY_NONE = frozenset(
    {"persist_result", "result_storage", "result_serializer", "log_prints"}
)


def check_name(name: Any, kind: str = "flow") -> str:
    """``name`` if it is a string without banned characters; TypeError / InvalidNameError if not."""
    if not isinstance(name, str):
        hint = (
            f" Perhaps you meant to call it? e.g. '@{kind}(name=get_{kind}_run_name())'"
            if callable(name)
            else ""
        )
        raise TypeError(
            f"Expected string for {kind} parameter 'name'; got {type(name).__name__} instead.{hint}"
        )
    if not name or any(char in name for char in BANNED_NAME_CHARACTERS):
        raise InvalidNameError(
            f"Name {name!r} contains an invalid character. "
            f"Must not contain any of: {list(BANNED_NAME_CHARACTERS)}."
        )
    return name


def _default_name(fn: Any) -> str:
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name.replace("_", "-").replace("<lambda>", "unknown-lambda")


def _default_version(fn: Any) -> str | None:
    """A digest of the file that defines ``fn``; None when it has no readable file."""
    try:
        source_file = inspect.getsourcefile(fn)
        if source_file is None:
            return None
        return file_hash(source_file)
    except (TypeError, OSError):  # built-ins, REPL code ("<stdin>"), deleted files
        return None


def _persist_implied(
    persist_result: bool | None, result_storage: Any, serializer: Any
) -> bool | None:
    """Choosing where or how results are stored asks for them to be stored."""
    if persist_result is None and (result_storage is not None or serializer is not None):
        return True
    return persist_result


def _entrypoint_of(fn: Any) -> str:
    """``module:qualname`` for ``fn``; a script's path instead of ``__main__``."""
    module = getattr(fn, "__module__", None) or ""
    if module == "__main__" or module.startswith(SCRIPT_MODULE_PREFIX):
        try:
            module = inspect.getfile(fn)
        except TypeError:  # a callable object or a built-in: keep the module name
            pass
    return f"{module}:{getattr(fn, '__qualname__', type(fn).__qualname__)}"


class Flow(DecoratedFunction, Generic[P, R]):
    """A function whose calls become tracked flow runs; tasks submitted inside are its children.

    Generic in the function's parameters and return type, so ``Flow[[int], str]``
    annotates a flow taking an int and returning a str.
    """

    def __init__(
        self,
        fn: Callable[P, R] | classmethod[Any, P, R] | staticmethod[P, R],
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
        self._options = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        hooks = {kind: check_hooks(kind, self._options[kind], "flow") for kind in _HOOK_KINDS}
        function = self._take_function(fn, "flow")
        self.name = check_name(name if name is not None else _default_name(function))
        check_run_name("flow_run_name", flow_run_name)
        if validate_parameters:
            _check_validatable(function)
        self.flow_run_name = flow_run_name
        self.version = version or _default_version(function)
        settings = current_settings()
        self.retries = retries if retries is not None else settings.flow_default_retries
        if retry_delay_seconds is None:
            retry_delay_seconds = settings.flow_default_retry_delay_seconds
        self.retry_delay_seconds = float(retry_delay_seconds or 0)
        self._task_runner = task_runner
        self.description = description or inspect.getdoc(function)
        self.tags = set(tags or ())
        self.timeout_seconds = float(timeout_seconds) if timeout_seconds else None
        self.should_validate_parameters = validate_parameters
        self.persist_result = _persist_implied(persist_result, result_storage, result_serializer)
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_result_in_memory = cache_result_in_memory
        self.log_prints = log_prints
        self._set_hooks(hooks)
        self._storage: Any = None  # the code storage of a flow loaded by from_source
        self._entrypoint = _entrypoint_of(function)

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

        A default is coerced too when it fits its hint (a dict default for a
        pydantic model parameter becomes the model) and left as written when
        it does not (``x: str = None`` is fine), as with pydantic models.
        """
        validated = dict(parameters)
        problems = []
        for name, (adapter, default) in self._adapters.items():
            if name not in parameters or _is_deferred(parameters[name]):
                continue
            value = parameters[name]
            try:
                validated[name] = adapter.validate_python(value)
            except ValidationError as exc:
                if value is default:
                    continue
                problems.extend(_problems(name, value, exc))
        if problems:
            raise ParameterTypeError(
                "Flow run received invalid parameters:\n - " + "\n - ".join(problems)
            )
        return validated

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Parameters as JSON-compatible values, for display and for the run record.

        A value with no JSON form (or a future or state, which would have to
        be waited for) becomes ``"<TypeName>"``; a bound ``self`` / ``cls`` is
        left out.
        """
        serialized = {}
        for name, value in parameters.items():
            if self._receiver is not UNBOUND and value is self._receiver:
                continue
            serialized[name] = _jsonable_or_placeholder(value)
        return serialized

    def resolve_run_name(self, parameters: dict[str, Any], run_id: uuid.UUID) -> str:
        """The flow run's name: the template or callable, else a random readable name."""
        template = self.flow_run_name
        check_run_name("flow_run_name", template)  # it may have been set after decoration
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

    # --- loading from source ----------------------------------------------------------------

    @classmethod
    async def afrom_source(cls, source: Any, entrypoint: str) -> Flow[..., Any]:
        """The flow ``entrypoint`` names in code that ``source`` holds or fetches.

        ``source`` is a local folder (a path) or a code storage (anything with
        ``set_base_path``, an async ``pull_code`` and ``destination``, as
        Prefect's runner storages have), whose code is pulled into a
        temporary folder first. The flow is loaded from there by file
        (``flows.py:my_flow``) or module (``package.flows.my_flow``). URLs and
        storage blocks need Prefect's server-side storages and raise
        TypeError here, like any other type.
        """
        if isinstance(source, (str, Path)) and Path(source).is_dir():
            loaded = _load_pulled_flow(Path(source), entrypoint)
        elif all(hasattr(source, name) for name in ("set_base_path", "pull_code")):
            with tempfile.TemporaryDirectory() as folder:
                source.set_base_path(Path(folder))
                await source.pull_code()
                loaded = _load_pulled_flow(Path(source.destination), entrypoint)
        else:
            raise TypeError(
                f"Unsupported source type {type(source).__name__!r}: give a local folder or "
                "a code storage with set_base_path(), pull_code() and destination."
            )
        loaded._storage = source
        loaded._entrypoint = entrypoint
        return loaded

    @classmethod
    @async_dispatch(afrom_source)
    def from_source(cls, source: Any, entrypoint: str) -> Flow[..., Any]:
        """``afrom_source`` for sync code (async code gets its coroutine)."""
        return run_coro_sync(cls.afrom_source(source, entrypoint))

    def with_options(
        self,
        *,
        name: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        task_runner: Any = None,
        description: str | None = None,
        tags: list[str] | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool | None = None,
        persist_result: bool | None = UNSET,
        result_storage: Any = UNSET,
        result_serializer: Any = UNSET,
        cache_result_in_memory: bool | None = None,
        log_prints: bool | None = UNSET,
        on_completion: list[Hook] | None = None,
        on_failure: list[Hook] | None = None,
        on_cancellation: list[Hook] | None = None,
        on_crashed: list[Hook] | None = None,
        on_running: list[Hook] | None = None,
    ) -> Flow[P, R]:
        """A copy with the given options changed; the original is untouched.

        An option left out keeps its value; ``persist_result``,
        ``result_storage``, ``result_serializer`` and ``log_prints`` can be
        cleared with None, ``timeout_seconds`` with 0.
        """
        overrides = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        copied = self._copy_with(overrides, _CLEARED_BY_NONE)
        copied._storage, copied._entrypoint = self._storage, self._entrypoint
        return copied

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
        """Run the flow and return its value (or its State with ``return_state=True``).

        Async flows return a coroutine; generator flows return an iterator.
        """
        from engine.flow_engine import run_flow

        parameters = self._call_parameters(args, kwargs)
        return run_flow(
            self,
            parameters=parameters,
            wait_for=wait_for,
            return_type="state" if return_state else "result",
        )

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


_HOOK_KINDS = ("on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running")


def _check_validatable(fn: Callable[..., Any]) -> None:
    clash = _VALIDATOR_RESERVED.intersection(signature_of(fn).parameters)
    if clash:
        raise ValueError(
            "Flow function is not compatible with `validate_parameters`: "
            f"{sorted(clash)} are reserved by the validator. "
            "Disable validation or change the argument names."
        )


def _problems(name: str, value: Any, exc: ValidationError) -> list[str]:
    """One line per validation error: where in the parameter, what is wrong, what was given."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in (name, *error["loc"]))
        lines.append(f"{where}: {error['msg']} (got {value!r})")
    return lines


def _is_deferred(value: Any) -> bool:
    """Futures and states are resolved by the engine, after validation."""
    from engine.futures import BaseFuture
    from engine.states import State

    return isinstance(value, (BaseFuture, State))


def _jsonable_or_placeholder(value: Any) -> Any:
    if _is_deferred(value):
        return f"<{type(value).__name__}>"
    try:
        return to_jsonable_python(value)
    except (TypeError, ValueError, RecursionError):  # no JSON form (cycles included)
        return f"<{type(value).__name__}>"


def _load_pulled_flow(destination: Path, entrypoint: str) -> Flow[..., Any]:
    """Load ``entrypoint`` from code pulled into ``destination``; sys.path is left as it was."""
    if ":" in entrypoint:
        return load_flow_from_entrypoint(str(destination / entrypoint))
    saved = list(sys.path)
    sys.path.insert(0, str(destination))
    try:
        return load_flow_from_entrypoint(entrypoint)
    finally:
        sys.path[:] = saved


# --- flows from entrypoints -------------------------------------------------------------------


def load_flow_from_entrypoint(entrypoint: str, use_placeholder_flow: bool = True) -> Flow[..., Any]:
    """The flow an entrypoint names, by running its script or importing its module.

    Entrypoints: ``path/to/file.py:my_flow``, ``path/to/file.py:MyClass.my_flow``
    or ``package.module.my_flow``. When the script raises (e.g. an import of a
    package not installed here) and ``use_placeholder_flow`` is true, the flow
    is rebuilt from its source instead (see ``safe_load_flow_from_entrypoint``).

    Raises MissingFlowError when nothing by that name is defined or it is not
    a flow, and ScriptError when the script raises and no flow can be rebuilt.
    """
    location, name = split_entrypoint(entrypoint)
    try:
        loaded = import_object(entrypoint)
    except AttributeError as exc:
        raise MissingFlowError(
            f"Flow function with name {name!r} not found in {location!r}."
        ) from exc
    except ScriptError:
        if not use_placeholder_flow:
            raise
        loaded = safe_load_flow_from_entrypoint(entrypoint)
        if loaded is None:
            raise
    if not isinstance(loaded, Flow):
        raise MissingFlowError(
            f"Function with name {name!r} is not a flow. "
            "Make sure that it is decorated with '@flow'."
        )
    return loaded


def load_function_and_convert_to_flow(entrypoint: str) -> Flow[..., Any]:
    """The flow an entrypoint names; a plain function becomes a flow (with ``log_prints``)."""
    location, name = split_entrypoint(entrypoint)
    try:
        loaded = import_object(entrypoint)
    except AttributeError as exc:
        raise RuntimeError(f"Function with name {name!r} not found in {location!r}.") from exc
    if isinstance(loaded, Flow):
        return loaded
    return Flow(loaded, log_prints=True)


def safe_load_flow_from_entrypoint(entrypoint: str) -> Flow[..., Any] | None:
    """The flow an entrypoint names, rebuilt from its source without importing the script whole.

    What cannot be imported here is skipped: annotations that need it are
    dropped and defaults that need it become None. Returns None when the flow
    cannot be rebuilt (its decorator needs what is missing); raises ValueError
    when the source defines no such object.
    """
    return safe_load_flow(entrypoint)


def load_flow_arguments_from_entrypoint(
    entrypoint: str, arguments: list[str] | set[str] | None = None
) -> dict[str, Any]:
    """The ``@flow(...)`` options of an entrypoint's flow, read from source, as strings.

    Only the options named in ``arguments`` are read (by default those that
    take plain values); ``name`` falls back to the function's name.
    """
    wanted = set(arguments) if arguments is not None else DEFAULT_ARGUMENTS
    return decorator_arguments(entrypoint, wanted)


class FlowDecorator:
    """The ``@flow`` decorator, with or without options.

    Example::

        @flow(log_prints=True)
        def etl(day: str) -> int: ...
    """

    @overload
    def __call__(self, __fn: Callable[P, R]) -> Flow[P, R]: ...

    @overload
    def __call__(
        self,
        __fn: None = None,
        *,
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
    ) -> Callable[[Callable[P, R]], Flow[P, R]]: ...

    def __call__(
        self,
        __fn: Any = None,
        *,
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
    ) -> Any:
        options = {k: v for k, v in locals().items() if k not in ("self", "__class__", "__fn")}
        options.pop("_FlowDecorator__fn", None)
        if __fn is not None:
            return Flow(__fn, **options)
        return functools.partial(Flow, **options)

    from_source = Flow.from_source
    afrom_source = Flow.afrom_source


flow = FlowDecorator()


__all__ = [
    "Flow",
    "FlowDecorator",
    "flow",
    "generate_run_name",
    "load_flow_arguments_from_entrypoint",
    "load_flow_from_entrypoint",
    "load_function_and_convert_to_flow",
    "safe_load_flow_from_entrypoint",
]
