"""A task called inline gets its arguments as they are: a value holding no future
or state is the caller's own object (``identity(x) is x``); only a collection
that holds one is rebuilt, with the resolved values in place."""

import dataclasses

from engine import flow, task
from engine.states import Completed

from ._tasks import add


@task
def same(x):
    return x


@dataclasses.dataclass
class Box:
    items: list
    label: str = "box"


class Opaque:
    """An object of a class the engine knows nothing about."""


@flow
def passes_through(value):
    return same(value) is value


@flow
def nested_future_is_resolved():
    future = add.submit(1, 2)
    other = ["kept"]
    out = same({"future": future, "other": other})
    return out["future"], out["other"] is other


@flow
def state_in_a_list_is_resolved():
    box = Box(items=[1])
    out = same([Completed(data=7), box])
    return out[0], out[1] is box


class TestInlineArgumentsAreNotCopied:
    def test_a_list_is_the_same_object(self):
        assert passes_through([1, [2, 3], {"a": 4}])

    def test_a_dict_is_the_same_object(self):
        assert passes_through({"k": [1, 2], "nested": {"x": (1, 2)}})

    def test_a_dataclass_is_the_same_object(self):
        assert passes_through(Box(items=[1, 2]))

    def test_an_arbitrary_object_is_the_same_object(self):
        assert passes_through(Opaque())

    def test_outside_a_flow_too(self):
        value = {"a": [1, 2]}
        assert same(value) is value


class TestCollectionsHoldingUpstreamsAreResolved:
    def test_a_future_inside_a_dict_becomes_its_value(self):
        value, other_kept = nested_future_is_resolved()
        assert value == 3
        assert other_kept  # the sibling that held nothing to resolve is not copied

    def test_a_state_inside_a_list_becomes_its_value(self):
        value, box_kept = state_in_a_list_is_resolved()
        assert value == 7
        assert box_kept
