"""engine.input: keysets, RunInput save / load in the run store, models made from types."""

from __future__ import annotations

import asyncio
import uuid
from typing import Union

import pydantic
import pytest

from engine import flow
from engine.context import FlowRunContext
from engine.input import (
    AutomaticRunInput,
    RunInput,
    RunInputMetadata,
    create_flow_run_input,
    keyset_from_base_key,
    keyset_from_paused_state,
    read_flow_run_input,
    run_input_subclass_from_type,
)
from engine.states import Paused, Running, Suspended


class Person(RunInput):
    name: str
    human: bool


class TestKeysets:
    def test_from_a_base_key(self):
        assert keyset_from_base_key("person") == {
            "description": "person-description",
            "response": "person-response",
            "schema": "person-schema",
        }

    def test_from_a_type(self):
        assert Person.keyset_from_type() == keyset_from_base_key("person")

    def test_from_paused_and_suspended_states(self):
        assert keyset_from_paused_state(Paused(pause_key="3")) == keyset_from_base_key("paused-3")
        assert keyset_from_paused_state(Suspended(pause_key="3")) == keyset_from_base_key(
            "suspended-3"
        )

    def test_other_states_have_none(self):
        with pytest.raises(RuntimeError, match="unsupported"):
            keyset_from_paused_state(Running())


@flow
def saves_and_loads():
    keyset = keyset_from_base_key("person")
    Person.with_initial_data(description="Who are you?", name="Bob").save(keyset)
    schema = read_flow_run_input(keyset["schema"])
    create_flow_run_input(keyset["response"], {"name": "Ann", "human": True})
    person = Person.load(keyset)
    flow_run_id = FlowRunContext.get().flow_run.id
    return schema, read_flow_run_input(keyset["description"]), person, flow_run_id


@flow
async def saves_and_loads_async():
    keyset = keyset_from_base_key("count")
    counter = run_input_subclass_from_type(int)
    await counter.save(keyset)
    await create_flow_run_input(keyset["response"], {"value": 3})
    return await counter.load(keyset), await counter.aload(keyset)


@flow
def loads_input_that_does_not_fit():
    keyset = keyset_from_base_key("person")
    create_flow_run_input(keyset["response"], {"name": "Ann", "human": "very"})
    return Person.load(keyset)


class TestSaveAndLoad:
    def test_in_a_flow_run(self):
        schema, description, person, flow_run_id = saves_and_loads()
        assert set(schema["properties"]) == {"name", "human"}
        assert schema["properties"]["name"]["default"] == "Bob"
        assert description == "Who are you?"
        assert (person.name, person.human) == ("Ann", True)
        assert person.metadata == RunInputMetadata(
            key="person-response", sender=None, receiver=flow_run_id
        )

    def test_in_an_async_flow_run_the_calls_are_awaitable(self):
        assert asyncio.run(saves_and_loads_async()) == (3, 3)

    def test_input_that_does_not_fit_the_model_is_a_validation_error(self):
        with pytest.raises(pydantic.ValidationError, match="boolean"):
            loads_input_that_does_not_fit()

    def test_outside_a_flow_run_name_the_run(self):
        run_id = uuid.uuid4()
        create_flow_run_input("k", [1, 2], flow_run_id=run_id)
        assert read_flow_run_input("k", flow_run_id=run_id) == [1, 2]
        assert read_flow_run_input("missing", flow_run_id=run_id) is None
        with pytest.raises(RuntimeError, match="flow_run_id"):
            read_flow_run_input("k")

    def test_load_from_a_stored_record(self):
        run_id = uuid.uuid4()
        record = type(
            "Record",
            (),
            {"key": "p", "value": '{"name": "Cy", "human": false}', "flow_run_id": run_id},
        )()
        person = Person.load_from_flow_run_input(record)
        assert person.name == "Cy" and person.metadata.receiver == run_id


class TestModelsFromTypes:
    def test_a_plain_type_becomes_a_value_field(self):
        model = run_input_subclass_from_type(str)
        assert issubclass(model, AutomaticRunInput)
        assert model(value="hey").value == "hey"
        with pytest.raises(pydantic.ValidationError):
            model(value=object())

    def test_a_pydantic_model_keeps_its_fields(self):
        class Plain(pydantic.BaseModel):
            name: str
            age: int

        model = run_input_subclass_from_type(Plain)
        assert issubclass(model, RunInput) and issubclass(model, Plain)
        assert model(name="Bob", age=42).age == 42

    def test_a_run_input_is_itself(self):
        assert run_input_subclass_from_type(Person) is Person

    def test_initial_data_keeps_optional_annotations(self):
        class Form(RunInput):
            name: Union[str, None] = None  # noqa: UP007 - the spelling under test
            age: int | None = None

        filled = Form.with_initial_data(name="Al", age=3)
        assert filled.model_fields["name"].annotation == Union[str, None]  # noqa: UP007
        assert filled().name == "Al" and filled(age=None).age is None
        assert Form().name is None
