"""Binding call arguments to a function's parameters, and back again."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any, Self

from engine.exceptions import ParameterBindError, SignatureMismatchError


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


class DecoratedFunction:
    """What Flow and Task share: options kept for ``with_options``, hook decorators,
    and binding as a method (``obj.method(x)`` gets a copy bound to ``obj``).

    Subclasses set ``fn``, ``is_async``, ``_options`` (their constructor's
    arguments) and one ``<kind>_hooks`` list per hook kind.
    """

    fn: Callable[..., Any]
    is_async: bool
    _options: dict[str, Any]

    def with_options(self, **overrides: Any) -> Self:
        """A copy with some options changed; the original is untouched."""
        return type(self)(self.fn, **{**self._options, **overrides})  # type: ignore[call-arg]

    def _add_hook(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Append ``fn`` to the ``kind`` hooks (a decorator's body); copies keep it."""
        hooks = getattr(self, f"{kind}_hooks")
        hooks.append(fn)
        self._options[kind] = hooks
        return fn

    @property
    def isasync(self) -> bool:
        """True for ``async def`` functions (the seed's name for ``is_async``)."""
        return self.is_async

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        bound = copy.copy(self)
        bound.fn = self.fn.__get__(instance, owner)
        return bound
