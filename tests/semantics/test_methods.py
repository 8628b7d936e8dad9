"""Issue 8 behaviours 6 and 10: flows and tasks as methods and callable objects; what
``map`` maps over; parameters coerced to their hints.

A flow or task looked up on an instance or class is bound to it: the receiver
is its first parameter (``self`` / ``cls``), seen by run names and sent along
to a worker with the other parameters.
"""

from __future__ import annotations

import pydantic
import pytest

from engine import Flow, Task, flow, task
from engine.exceptions import ParameterTypeError

from . import _helpers as h
from ._side_effects import record, recorded


class Counter:
    """Instance, class and static methods as flows and tasks (module level: importable)."""

    unit = 1

    def __init__(self, start: int) -> None:
        self.start = start

    @task(task_run_name="count-from-{self.start}-by-{step}")
    def count(self, step: int) -> int:
        return self.start + step * self.unit

    @task
    @classmethod
    def kind(cls) -> str:
        return cls.__name__

    @task
    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    @flow
    def total(self, steps: list[int]) -> list[int]:
        futures = [self.count.submit(step) for step in steps]
        return [future.result() for future in futures]

    @flow
    @classmethod
    def describe(cls) -> str:
        return cls.kind()

    @classmethod
    @flow
    def describe_again(cls) -> str:
        return cls.__name__

    @flow
    @staticmethod
    def quadruple(x: int) -> int:
        return Counter.double(Counter.double(x))


class TenCounter(Counter):
    unit = 10


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(ignored_types=(Flow, Task))
    base: int = 5

    @flow
    def plus(self, x: int) -> int:
        return self.base + x


class Adder:
    """A method task whose cache key includes ``self``."""

    def __init__(self, x: int) -> None:
        self.x = x

    @task(persist_result=True)
    def add(self, a: int) -> int:
        return a + self.x


@flow
def add_with_two_adders():
    one, hundred = Adder(1), Adder(100)
    inline = [adder.add(5, return_state=True) for adder in (one, one, hundred, hundred)]
    submitted = one.add.submit(5)
    submitted.wait()
    states = [*inline, submitted.state]
    return [state.name for state in states], [state.result() for state in states]


class Shout:
    """A callable object used as a task."""

    suffix = "!"

    def __call__(self, word: str) -> str:
        return word.upper() + self.suffix


shout = Task(fn=Shout())


@flow
def shout_flow(word):
    return shout(word), shout.submit(word).result()


@task
def numbers():
    return [1, 2, 3]


@task
def add_one(x):
    return x + 1


@task
def add_extra(x, **extra):
    return x + sum(extra.values())


@flow
def map_over_state():
    state = numbers(return_state=True)
    return add_one.map(state).result()


@flow
def map_over_future():
    return add_one.map(numbers.submit()).result()


@flow
def map_kwargs(key):
    record(key, "ran")
    return (
        add_extra.map([1, 2, 3], y=[10, 20, 30]).result(),
        add_extra.map([1, 2, 3], y=100).result(),
    )


class Point(pydantic.BaseModel):
    x: int
    y: int


@flow
def with_dict_default(point: Point = {"x": 1, "y": 2}):  # type: ignore[assignment]  # noqa: B006
    return type(point).__name__, point.x + point.y


@flow
def with_none_default(label: str = None):  # type: ignore[assignment]
    return label


class TestMethods:
    def test_instance_method_task_submitted_and_named_with_self(self):
        counter = Counter(100)
        assert counter.total([1, 2]) == [101, 102]
        assert TenCounter(100).total([1]) == [110]

    def test_task_run_name_reads_self(self):
        @flow
        def named():
            return Counter(7).count(3, return_state=True)

        state = named()
        assert state.result() == 10
        assert h.task_run(state.state_details.task_run_id).name == "count-from-7-by-3"

    def test_class_methods_bind_the_class_they_are_looked_up_on(self):
        assert Counter.describe() == "Counter"
        assert TenCounter.describe() == "TenCounter"
        assert TenCounter.describe_again() == "TenCounter"
        assert TenCounter.describe.with_options(name="again")() == "TenCounter"
        assert isinstance(Counter.describe, Flow) and Counter.describe.isclassmethod

    def test_static_methods(self):
        assert Counter.quadruple(3) == 12
        assert Counter(0).quadruple(1) == 4
        assert isinstance(Counter.double, Task) and Counter.double.isstaticmethod

    def test_unbound_lookup_takes_the_instance_as_an_argument(self):
        counter = Counter(1)
        assert Counter.total(counter, [1]) == [2]
        assert counter.total.ismethod and not Counter.total.ismethod

    def test_a_method_task_cache_key_includes_self(self):
        names, values = add_with_two_adders()
        assert names == ["Completed", "Cached", "Completed", "Cached", "Cached"]
        assert values == [6, 6, 105, 105, 6]

    def test_pydantic_model_methods(self):
        assert Model().plus(1) == 6
        assert Model(base=1).plus(1) == 2

    def test_callable_object(self):
        assert shout_flow("hi") == ("HI!", "HI!")
        assert shout.name == "Shout"


class TestMapInputs:
    def test_map_over_a_state_maps_its_result(self):
        assert map_over_state() == [2, 3, 4]

    def test_map_over_a_future_maps_its_result(self):
        assert map_over_future() == [2, 3, 4]

    def test_kwargs_items_are_mapped_or_passed_whole(self, key):
        assert map_kwargs(key) == ([11, 22, 33], [101, 102, 103])
        assert recorded(key) == ["ran"]


class TestParameterCoercion:
    def test_dict_default_becomes_the_annotated_model(self):
        assert with_dict_default() == ("Point", 3)
        assert with_dict_default({"x": 5, "y": 5}) == ("Point", 10)

    def test_default_that_does_not_fit_its_hint_is_kept(self):
        assert with_none_default() is None
        with pytest.raises(ParameterTypeError, match="label"):
            with_none_default(label=["not", "a", "string"])
