"""Walking nested arguments to find and replace futures and states."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from engine.annotations import BaseAnnotation, quote

# Plain values can never hold a future or a state; skipping them keeps
# submitting many small calls cheap.
_ATOMIC_TYPES = frozenset({int, float, str, bytes, bool, type(None), complex})


def visit_collection(expr: Any, visit: Callable[[Any], Any]) -> Any:
    """Rebuild ``expr`` with ``visit`` applied to every leaf and container.

    ``visit`` sees each item first; if it returns something other than the item
    itself, that replacement is used and not descended into. ``quote``-wrapped
    values are left untouched, and plain scalars (ints, strings...) are not visited.
    """
    if type(expr) in _ATOMIC_TYPES:
        return expr
    replaced = visit(expr)
    if replaced is not expr or isinstance(expr, quote):
        return replaced
    if isinstance(expr, BaseAnnotation):
        return type(expr)(visit_collection(expr.value, visit))
    if isinstance(expr, (list, tuple, set, frozenset)):
        items = [visit_collection(item, visit) for item in expr]
        if isinstance(expr, tuple) and hasattr(expr, "_fields"):
            return type(expr)(*items)
        return type(expr)(items)
    if isinstance(expr, dict):
        return type(expr)(
            (visit_collection(k, visit), visit_collection(v, visit)) for k, v in expr.items()
        )
    if dataclasses.is_dataclass(expr) and not isinstance(expr, type):
        fields = {
            f.name: visit_collection(getattr(expr, f.name), visit)
            for f in dataclasses.fields(expr)
            if f.init
        }
        return dataclasses.replace(expr, **fields)
    if isinstance(expr, BaseModel) and not _is_engine_model(expr):
        values = {
            name: visit_collection(getattr(expr, name), visit) for name in type(expr).model_fields
        }
        return expr.model_copy(update=values)
    return expr


def _is_engine_model(expr: BaseModel) -> bool:
    # States and run records are values in their own right, not containers.
    return type(expr).__module__.startswith("engine.")


def collect(expr: Any, match: Callable[[Any], bool]) -> list[Any]:
    """Every item in ``expr`` (nested) for which ``match`` is true."""
    found: list[Any] = []

    def visit(item: Any) -> Any:
        if match(item):
            found.append(item)
        return item

    visit_collection(expr, visit)
    return found


def dict_to_flatdict(nested: dict[Any, Any]) -> dict[tuple[Any, ...], Any]:
    """``{"a": {"b": 1}}`` as ``{("a", "b"): 1}``; empty dicts are kept as values."""
    flat: dict[tuple[Any, ...], Any] = type(nested)()
    todo: list[tuple[tuple[Any, ...], dict[Any, Any]]] = [((), nested)]
    while todo:
        prefix, level = todo.pop()
        for key, value in level.items():
            if isinstance(value, dict) and value:
                todo.append(((*prefix, key), value))
            else:
                flat[(*prefix, key)] = value
    return flat


def flatdict_to_dict(flat: dict[tuple[Any, ...], Any]) -> dict[Any, Any]:
    """The nested dict ``dict_to_flatdict`` flattened (keys are tuples of keys)."""
    nested: dict[Any, Any] = type(flat)()
    for *parents, last in flat:
        level = nested
        for key in parents:
            level = level.setdefault(key, type(flat)())
        level[last] = flat[(*parents, last)]
    return nested
