"""Binding call arguments to a function's parameters, and back again."""

from __future__ import annotations

import copy
import functools
import inspect
import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, create_model

from engine.exceptions import ParameterBindError, ReservedArgumentError, SignatureMismatchError


@functools.lru_cache(maxsize=1024)
def _signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    # inspect.signature costs several microseconds and a worker asks it for
    # every task run of the same few functions.
    return inspect.signature(fn)


def signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    """``inspect.signature(fn)``, cached for hashable callables."""
    try:
        hash(fn)
    except TypeError:  # an unhashable callable object cannot be a cache key
        return inspect.signature(fn)
    return _signature_of(fn)


def get_call_parameters(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    apply_defaults: bool = True,
) -> dict[str, Any]:
    """Map call arguments to parameter names; raises ParameterBindError naming the culprit."""
    signature = signature_of(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        name = getattr(fn, "__name__", repr(fn))
        shown = str(signature).strip("()")
        raise ParameterBindError(
            f"Error binding parameters for function {name!r}: {exc}.\n"
            f"Function {name!r} has signature '{shown}' but received args: {args}"
            f" and kwargs: {list(kwargs)}."
        ) from None
    if apply_defaults:
        bound.apply_defaults()
    return dict(bound.arguments)


def parameters_to_args_kwargs(
    fn: Callable[..., Any], parameters: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Turn a parameter dict back into positional and keyword arguments for ``fn``.

    Parameters before a ``*args`` parameter go positionally, so
    ``def f(a, *args)`` called as ``f(1, 2, 3)`` is called the same way again.
    """
    signature = signature_of(fn)
    unknown = set(parameters) - set(signature.parameters)
    if unknown:
        raise SignatureMismatchError(
            f"Function {getattr(fn, '__name__', fn)!r} got unexpected parameters: "
            f"{sorted(unknown)}."
        )
    bound = signature.bind_partial()
    bound.arguments = {
        name: parameters[name] for name in signature.parameters if name in parameters
    }
    return bound.args, bound.kwargs


def is_async_fn(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions."""
    return inspect.iscoroutinefunction(inspect.unwrap(fn))


def is_generator_fn(fn: Callable[..., Any]) -> bool:
    """True for functions containing ``yield`` (sync generators)."""
    return inspect.isgeneratorfunction(inspect.unwrap(fn))


def is_async_generator_fn(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions containing ``yield``."""
    return inspect.isasyncgenfunction(inspect.unwrap(fn))


def raise_for_reserved_arguments(fn: Callable[..., Any], reserved: Iterable[str]) -> None:
    """Raise ReservedArgumentError if ``fn`` takes a parameter named like a call option."""
    parameters = signature_of(fn).parameters
    for name in reserved:
        if name in parameters:
            raise ReservedArgumentError(f"{name!r} is a reserved argument name and cannot be used.")


def unwrap_method_descriptor(fn: Any) -> tuple[Any, str | None]:
    """``fn`` without a classmethod / staticmethod wrapper, and which wrapper it had."""
    if isinstance(fn, classmethod):
        return fn.__func__, "classmethod"
    if isinstance(fn, staticmethod):
        return fn.__func__, "staticmethod"
    return fn, None


def check_hooks(kind: str, hooks: Any, decorator: str) -> list[Callable[..., Any]]:
    """``hooks`` as a list; TypeError at decoration if it is not a list of callables."""
    if hooks is None:
        return []
    example = f"\n\n@{decorator}({kind}=[hook1, hook2])\ndef my_{decorator}():\n\tpass"
    try:
        hooks = list(hooks)
    except TypeError:
        raise TypeError(
            f"Expected iterable for {kind!r}; got {type(hooks).__name__} instead. "
            f"Please provide a list of hooks to {kind!r}:{example}"
        ) from None
    for hook in hooks:
        if not callable(hook):
            raise TypeError(
                f"Expected callables in {kind!r}; got {type(hook).__name__} instead. "
                f"Please provide a list of hooks to {kind!r}:{example}"
            )
    return hooks


def check_run_name(option: str, value: Any) -> None:
    """TypeError at decoration unless a run name is None, a string or a callable."""
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(
            f"Expected string or callable for {option!r}; got {type(value).__name__} instead."
        )


class _Unbound:
    """The receiver of a flow or task that is not bound to an instance or class."""

    def __repr__(self) -> str:
        return "<unbound>"


UNBOUND: Any = _Unbound()


class DecoratedFunction:
    """What Flow and Task share: options kept for ``with_options``, hook decorators,
    and use as a method.

    A flow or task defined in a class body works as an instance method, a
    classmethod (``@flow`` above ``@classmethod``) or a staticmethod: looking
    it up on an instance or class gives a copy bound to that receiver, which
    becomes the function's first parameter (``self`` / ``cls``) in the run's
    parameters, so run names, cache keys and hooks see it like any argument.

    Subclasses set ``fn``, ``is_async``, ``_options`` (their constructor's
    arguments) and one ``<kind>_hooks`` list per hook kind.
    """

    fn: Callable[..., Any]
    is_async: bool
    isgenerator: bool
    _options: dict[str, Any]
    _method_kind: str | None = None
    _receiver: Any = UNBOUND

    def _take_function(self, fn: Any, decorator: str) -> Callable[..., Any]:
        """Keep ``fn`` (unwrapped from a classmethod / staticmethod) after checking it."""
        function, self._method_kind = unwrap_method_descriptor(fn)
        if not callable(function):
            raise TypeError(f"@{decorator} must decorate a function.")
        raise_for_reserved_arguments(function, ("return_state", "wait_for"))
        self.fn = function
        self.is_async = is_async_fn(function) or is_async_generator_fn(function)
        self.isgenerator = is_generator_fn(function) or is_async_generator_fn(function)
        functools.update_wrapper(self, function, updated=())  # type: ignore[arg-type]
        return function

    def _set_hooks(self, hooks: dict[str, list[Callable[..., Any]]]) -> None:
        for kind, kind_hooks in hooks.items():
            setattr(self, f"{kind}_hooks", kind_hooks)

    def _copy_with(self, overrides: dict[str, Any], keep_none: frozenset[str]) -> Self:
        """A copy built from this one's options with ``overrides`` applied.

        An override left at the UNSET default keeps the current value; None
        keeps it too, except for the options in ``keep_none`` where None
        clears the option (``result_storage=None``).
        """
        given = {
            name: value
            for name, value in overrides.items()
            if value is not UNSET and (value is not None or name in keep_none)
        }
        options = {**self._options, **given}
        definition = options.pop("fn")
        copied = type(self)(definition, **options)  # type: ignore[call-arg]
        copied._receiver = self._receiver
        return copied

    def _add_hook(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Append ``fn`` to the ``kind`` hooks (a decorator's body); copies keep it."""
        hooks = getattr(self, f"{kind}_hooks")
        hooks.append(fn)
        self._options[kind] = hooks
        return fn

    def _call_parameters(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], apply_defaults: bool = True
    ) -> dict[str, Any]:
        """A call's arguments by parameter name, the bound receiver first."""
        if self._receiver is not UNBOUND:
            args = (self._receiver, *args)
        return get_call_parameters(self.fn, args, kwargs, apply_defaults=apply_defaults)

    @property
    def isasync(self) -> bool:
        """True for ``async def`` functions (the seed's name for ``is_async``)."""
        return self.is_async

    @property
    def ismethod(self) -> bool:
        """True for a copy bound to an instance."""
        return self._receiver is not UNBOUND and self._method_kind is None

    @property
    def isclassmethod(self) -> bool:
        """True when the function was a classmethod."""
        return self._method_kind == "classmethod"

    @property
    def isstaticmethod(self) -> bool:
        """True when the function was a staticmethod."""
        return self._method_kind == "staticmethod"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if self._method_kind == "staticmethod":
            return self
        if self._method_kind == "classmethod":
            receiver = owner if owner is not None else type(instance)
        elif instance is not None:
            receiver = instance
        else:
            return self
        bound = copy.copy(self)
        bound._receiver = receiver
        return bound


class _Unset:
    """Default of ``with_options`` arguments that were not given."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


# --- parameter schemas ------------------------------------------------------------------------


class ParameterSchema(BaseModel):
    """A JSON schema of a function's parameters (an OpenAPI object schema)."""

    title: Literal["Parameters"] = "Parameters"
    type: Literal["object"] = "object"
    properties: dict[str, Any] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    definitions: dict[str, Any] = Field(default_factory=dict)


def parameter_docstrings(docstring: str | None) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section, by name."""
    found: dict[str, str] = {}
    in_args = False
    current = None
    for line in (docstring or "").splitlines():
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args, current = True, None
            continue
        if not in_args:
            continue
        if stripped and not line.startswith((" ", "\t")):
            break  # a new section starts at the left margin
        match = _ARG_LINE.match(stripped)
        if match and line.startswith(("    ", "\t")) and not line.startswith(("        ", "\t\t")):
            current = match["name"]
            found[current] = match["text"].strip()
        elif current and stripped:
            found[current] = f"{found[current]} {stripped}".strip()
    return found


_ARG_LINE = re.compile(r"^\*{0,2}(?P<name>\w+)(?:\s*\([^)]*\))?:\s*(?P<text>.*)$")


def parameter_schema(fn: Callable[..., Any]) -> ParameterSchema:
    """The JSON schema of ``fn``'s parameters (a flow's: its function's).

    Each property has its title, type, default and ``position``; a bound
    ``self`` / ``cls`` is left out; descriptions come from the docstring's
    ``Args:`` section; a type pydantic cannot describe is shown as any value.
    """
    target = getattr(fn, "fn", fn)
    try:
        signature = inspect.signature(target, eval_str=True)
    except Exception:  # an annotation names something not importable here
        signature = inspect.signature(target)
    docs = parameter_docstrings(inspect.getdoc(target))
    fields: dict[str, Any] = {}
    for position, parameter in enumerate(signature.parameters.values()):
        if parameter.name in ("self", "cls"):
            continue
        fields[parameter.name] = _schema_field(parameter, position, docs)
    schema = _json_schema(fields)
    schema["definitions"] = schema.pop("$defs", {})
    return ParameterSchema(**schema)


def _schema_field(
    parameter: inspect.Parameter, position: int, docs: dict[str, str]
) -> tuple[Any, Any]:
    annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
    field = Field(
        default=... if parameter.default is parameter.empty else parameter.default,
        title=parameter.name,
        description=docs.get(parameter.name),
        # a name that shadows a BaseModel attribute ("json", "copy") is aliased
        alias=parameter.name if hasattr(BaseModel, parameter.name) else None,
        json_schema_extra={"position": position},
    )
    try:
        _json_schema({parameter.name: (annotation, field)})
    except Exception:  # pydantic cannot describe this type: any value
        annotation = Any
    return annotation, field


def _json_schema(fields: dict[str, Any]) -> dict[str, Any]:
    safe = {
        (f"{name}__" if hasattr(BaseModel, name) else name): spec for name, spec in fields.items()
    }
    model = create_model("Parameters", __config__=ConfigDict(arbitrary_types_allowed=True), **safe)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-serializable defaults are left out
        schema = model.model_json_schema(by_alias=True)
    return _defs_as_definitions(schema)


def _defs_as_definitions(schema: Any) -> Any:
    """Rewrite pydantic's ``#/$defs/`` references the way OpenAPI 3.0 names them."""
    if isinstance(schema, dict):
        return {
            key: (
                value.replace("#/$defs/", "#/definitions/")
                if key == "$ref" and isinstance(value, str)
                else _defs_as_definitions(value)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_defs_as_definitions(item) for item in schema]
    return schema
