"""Spec item 9: flow parameter validation and coercion from type hints."""

import pytest
from pydantic import BaseModel

from engine import flow
from engine.context import FlowRunContext
from engine.exceptions import ParameterTypeError

from . import _helpers as h
from ._side_effects import record, recorded


class Point(BaseModel):
    x: int
    y: int


@flow
def typed_flow(count: int):
    return count, type(count).__name__


@flow
def typed_recording_flow(key: str, count: int):
    record(key, "body ran")
    return count


@flow
def two_typed_flow(count: int, sizes: list[int]):
    return count


@flow(validate_parameters=False)
def unvalidated_flow(count: int):
    return count, type(count).__name__


@flow
def model_flow(point: Point):
    return type(point).__name__, point.x + point.y


@flow
def parameters_flow(count: int, label: str = "default"):
    return FlowRunContext.get().flow_run.parameters


class TestParameterValidation:
    def test_string_coerced_to_int(self):
        value, type_name = typed_flow("3")
        assert value == 3
        assert type_name == "int"

    def test_dict_coerced_to_model(self):
        assert model_flow({"x": 1, "y": 2}) == ("Point", 3)

    def test_coerced_parameters_recorded_on_flow_run(self):
        assert parameters_flow("4") == {"count": 4, "label": "default"}

    def test_invalid_value_fails_run_without_calling_body(self, key):
        state = typed_recording_flow(key, "not-a-number", return_state=True)
        assert state.is_failed()
        assert "count" in state.message
        assert state.message.startswith("Validation of flow parameters failed with error: ")
        assert recorded(key) == []
        names = h.names(state.state_details.flow_run_id)
        assert names[-1] == "Failed"
        assert names[0] == "Pending"

    def test_invalid_value_raises_without_return_state(self, key):
        with pytest.raises(ParameterTypeError, match="count"):
            typed_recording_flow(key, "not-a-number")
        assert recorded(key) == []

    def test_validation_disabled(self):
        value, type_name = unvalidated_flow("3")
        assert value == "3"
        assert type_name == "str"

    def test_every_invalid_parameter_is_named_with_its_location(self):
        state = two_typed_flow("x", [1, "y"], return_state=True)
        assert state.is_failed()
        assert "Flow run received invalid parameters:" in state.message
        assert " - count: Input should be a valid integer" in state.message
        assert " - sizes.1: Input should be a valid integer" in state.message
