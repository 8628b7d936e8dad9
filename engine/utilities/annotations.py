"""Wrappers that change how an argument is treated when a task is submitted.

``unmapped``, ``allow_failure``, ``quote`` and ``opaque`` instruct the engine
about a task argument; ``freeze`` marks a JSON value that must not change.
``engine.annotations`` re-exports these names under its older path.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema, to_json

T = TypeVar("T")


class BaseAnnotation(Generic[T]):
    """A value wrapped with an instruction for the engine."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        """The wrapped value."""
        return self.value

    def rewrap(self, value: T) -> BaseAnnotation[T]:
        """The same annotation around another value."""
        return type(self)(value)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self), id(self.value)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value,))


class unmapped(BaseAnnotation[T]):
    """Pass the same value to every call of ``Task.map`` instead of iterating it.

    Example: ``add.map([1, 2, 3], unmapped(10))``.
    """

    def __getitem__(self, _: Any) -> T:
        return self.value


class allow_failure(BaseAnnotation[T]):
    """Run the downstream task even if this upstream failed; it receives the exception."""


class quote(BaseAnnotation[T]):
    """Pass the value as-is: futures and states inside it are not resolved."""

    def unquote(self) -> T:
        """The quoted value."""
        return self.unwrap()


class opaque(BaseAnnotation[T]):
    """Resolve the wrapped future or state, but do not look inside its value.

    Without an annotation the engine walks an argument's contents for futures
    and states to wait on and resolve; on a large value that walk is costly,
    and a value holding states of its own (a run record, a result containing
    ``State`` objects) would have them taken as upstream dependencies.
    ``opaque`` keeps the top-level resolution (``opaque(future)`` gives the
    task the future's result) and passes the result on untouched. Compare
    ``quote``, which resolves nothing.

    Example: ``process.submit(opaque(load.submit()))``.
    """


class freeze(BaseAnnotation[T]):
    """A JSON value marked as fixed: callers may not change it.

    The value must serialise to JSON (else ``ValueError``); ``unfreeze()``
    returns it, and pydantic serialises a ``freeze`` as its plain value, so
    parameters holding one dump as if it were not there.

    Example: ``freeze({"region": "eu"}).unfreeze() == {"region": "eu"}``.
    """

    __slots__ = ()

    def __init__(self, value: T) -> None:
        try:
            to_json(value)
        except Exception as exc:
            raise ValueError("Value must be JSON serializable") from exc
        super().__init__(value)

    def unfreeze(self) -> T:
        """The frozen value."""
        return self.value

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # Validating any value freezes it; serialising dumps the plain value.
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.any_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda frozen: frozen.unfreeze()
            ),
        )


NotSet: Any = type("NotSetType", (), {"__repr__": lambda self: "NotSet"})()
