"""Wrappers that change how an argument is treated when a task is submitted."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

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


NotSet: Any = type("NotSetType", (), {"__repr__": lambda self: "NotSet"})()
