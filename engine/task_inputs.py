"""The input graph of a task run: the upstream futures its arguments name, which of
them failed, and the arguments with futures and states replaced by their values.

The runners use ``Upstreams`` to hold a run until its upstreams are done and to
decide whether it may run; the task engine uses ``resolve_inputs`` just before it
calls the function. Arguments are passed as they are: a collection is rebuilt
only when it holds a future or a state to replace, so ``identity(x) is x``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from engine.futures import BaseFuture
from engine.states import State
from engine.utilities.annotations import BaseAnnotation, allow_failure, opaque, quote
from engine.utilities.collections import visit_collection

# Plain values never hold a future or a state: they are returned at once.
_ATOMIC_TYPES = frozenset({int, float, str, bytes, bool, type(None), complex})


# --- the upstream set ---------------------------------------------------------------------


class Upstreams:
    """The futures a run depends on, found in one walk of its arguments and ``wait_for``.

    ``futures`` is what a runner waits for; ``failed()`` then names the finished
    upstreams that did not complete and are not wrapped in ``allow_failure``,
    without walking the arguments again.
    """

    __slots__ = ("futures", "_required", "_states")

    def __init__(self, parameters: Any, wait_for: Any = None) -> None:
        required: dict[int, BaseFuture[Any]] = {}
        allowed: dict[int, BaseFuture[Any]] = {}
        states: list[State[Any]] = []
        _collect(parameters, False, required, allowed, states)
        _collect(wait_for, False, required, allowed, states)
        self._required = list(required.values())
        self._states = states
        self.futures = self._required + [f for k, f in allowed.items() if k not in required]

    def failed(self) -> list[State[Any]]:
        """States of required upstreams (futures or states) that did not complete."""
        failed = [f.state for f in self._required if not f.completed()]
        return failed + [s for s in self._states if not s.is_completed()]


def _collect(
    expr: Any,
    allowed: bool,
    required: dict[int, BaseFuture[Any]],
    optional: dict[int, BaseFuture[Any]],
    states: list[State[Any]],
) -> None:
    # A module function rather than a closure calling itself: such a closure is
    # a reference cycle per task run, left for the garbage collector.
    def visit(item: Any) -> Any:
        if isinstance(item, quote):
            return item
        if isinstance(item, allow_failure):
            _collect(item.value, True, required, optional, states)
            return None  # already walked: don't descend again
        if isinstance(item, opaque):
            _collect_top(item.value, allowed, required, optional, states)
            return None
        if isinstance(item, (BaseFuture, State)):
            _collect_top(item, allowed, required, optional, states)
            return None  # a state is a leaf, not a container
        return item

    visit_collection(expr, visit)


def _collect_top(
    item: Any,
    allowed: bool,
    required: dict[int, BaseFuture[Any]],
    optional: dict[int, BaseFuture[Any]],
    states: list[State[Any]],
) -> None:
    if isinstance(item, BaseFuture):
        (optional if allowed else required)[id(item)] = item
    elif isinstance(item, State) and not allowed:
        states.append(item)


def upstream_futures(expr: Any) -> list[BaseFuture[Any]]:
    """The futures ``expr`` depends on (quoted values excluded)."""
    return Upstreams(expr).futures


def failed_upstreams(parameters: dict[str, Any], wait_for: Any = None) -> list[State[Any]]:
    """States of finished upstreams that did not complete and are not ``allow_failure``."""
    return Upstreams(parameters, wait_for).failed()


# --- resolving arguments --------------------------------------------------------------------


def resolve_inputs(parameters: dict[str, Any]) -> tuple[dict[str, Any], list[State[Any]]]:
    """Parameters with futures and states replaced by values, and the upstreams that failed.

    ``allow_failure`` upstreams contribute their exception; ``quote`` is passed as-is;
    ``opaque`` resolves a future or state it wraps but does not look inside the value.
    A value that holds nothing to resolve is passed on as the same object.
    """
    failed: list[State[Any]] = []
    resolved = {name: _resolve(value, False, failed) for name, value in parameters.items()}
    return resolved, failed


def _resolve(expr: Any, allowed: bool, failed: list[State[Any]]) -> Any:
    kind = type(expr)
    if kind in _ATOMIC_TYPES:
        return expr
    if isinstance(expr, BaseFuture):
        expr.wait()
        return _value_of(expr.state, allowed, failed)
    if isinstance(expr, State):
        return _value_of(expr, allowed, failed)
    if isinstance(expr, BaseAnnotation):
        return _resolve_annotation(expr, allowed, failed)
    if kind in (list, tuple, set, frozenset) or isinstance(expr, (list, tuple, set, frozenset)):
        return _resolve_sequence(expr, allowed, failed)
    if isinstance(expr, dict):
        return _resolve_mapping(expr, allowed, failed)
    if dataclasses.is_dataclass(expr) and not isinstance(expr, type):
        return _resolve_dataclass(expr, allowed, failed)
    if isinstance(expr, BaseModel) and not type(expr).__module__.startswith("engine."):
        return _resolve_model(expr, allowed, failed)
    return expr


def _resolve_annotation(expr: BaseAnnotation[Any], allowed: bool, failed: list[State[Any]]) -> Any:
    if isinstance(expr, quote):
        return expr.unwrap()
    if isinstance(expr, opaque):
        inner = expr.unwrap()
        if isinstance(inner, (BaseFuture, State)):
            return _resolve(inner, allowed, failed)
        return inner
    return _resolve(expr.unwrap(), allowed or isinstance(expr, allow_failure), failed)


def _resolve_sequence(expr: Any, allowed: bool, failed: list[State[Any]]) -> Any:
    items = [_resolve(item, allowed, failed) for item in expr]
    if all(new is old for new, old in zip(items, expr, strict=True)):
        return expr
    if isinstance(expr, tuple) and hasattr(expr, "_fields"):
        return type(expr)(*items)
    return type(expr)(items)


def _resolve_mapping(expr: dict[Any, Any], allowed: bool, failed: list[State[Any]]) -> Any:
    pairs = [
        (_resolve(k, allowed, failed), _resolve(v, allowed, failed)) for k, v in expr.items()
    ]
    if all(nk is k and nv is v for (nk, nv), (k, v) in zip(pairs, expr.items(), strict=True)):
        return expr
    return type(expr)(pairs)


def _resolve_dataclass(expr: Any, allowed: bool, failed: list[State[Any]]) -> Any:
    changed = {}
    for field in dataclasses.fields(expr):
        if not field.init:
            continue
        old = getattr(expr, field.name)
        new = _resolve(old, allowed, failed)
        if new is not old:
            changed[field.name] = new
    return dataclasses.replace(expr, **changed) if changed else expr


def _resolve_model(expr: BaseModel, allowed: bool, failed: list[State[Any]]) -> Any:
    changed = {}
    for name in type(expr).model_fields:
        old = getattr(expr, name)
        new = _resolve(old, allowed, failed)
        if new is not old:
            changed[name] = new
    return expr.model_copy(update=changed) if changed else expr


def _value_of(state: State[Any], allowed: bool, failed: list[State[Any]]) -> Any:
    if state.is_completed():
        return state.result()
    if allowed:
        return state.result(raise_on_failure=False)
    failed.append(state)
    return None


__all__ = ["Upstreams", "failed_upstreams", "resolve_inputs", "upstream_futures"]
