"""Typed run input: pydantic models a paused flow run waits for, and their store keys.

Example::

    class Approval(RunInput):
        approved: bool
        note: str = ""

    approval = pause_flow_run(wait_for_input=Approval, timeout=600)

A model's documents live under a keyset: ``<base>-schema`` (its JSON
schema, for whoever resumes), ``<base>-description`` and ``<base>-response``
(the input sent).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model

from engine.input.actions import ensure_flow_run_id, read_input_text, write_input
from engine.states import State, StateType
from engine.utilities.asyncutils import async_dispatch

# The store keys of one run input: "description", "response" and "schema".
Keyset = dict[str, str]


def keyset_from_base_key(base_key: str) -> Keyset:
    """The keyset of ``base_key``: ``<base>-description``, ``-response`` and ``-schema``."""
    return {
        "description": f"{base_key}-description",
        "response": f"{base_key}-response",
        "schema": f"{base_key}-schema",
    }


def keyset_from_paused_state(state: State[Any]) -> Keyset:
    """The keyset of the input a Paused (or Suspended) state waits for.

    Raises RuntimeError for a state of another type.
    """
    if state.type != StateType.PAUSED:
        raise RuntimeError(f"{state.type.value!r} is unsupported.")
    name = (state.name or "Paused").lower()
    return keyset_from_base_key(f"{name}-{state.state_details.pause_key}")


class RunInputMetadata(BaseModel):
    """Where a received input came from: its key, its sender, and the flow run it was sent to."""

    key: str
    sender: str | None
    receiver: uuid.UUID


class RunInput(BaseModel):
    """Base class for the input a paused flow run waits for (unknown fields are refused)."""

    model_config = ConfigDict(extra="forbid")

    # Dunder: pydantic neither makes it a field nor a private attribute, and a
    # form's own ``description`` field stays free.
    __description__: ClassVar[str | None] = None
    _metadata: RunInputMetadata | None = PrivateAttr(default=None)

    @property
    def metadata(self) -> RunInputMetadata | None:
        """Where this input was loaded from, when it was loaded from a flow run."""
        return self._metadata

    @classmethod
    def keyset_from_type(cls) -> Keyset:
        """The keyset named after this class (``Person`` -> ``person-...``)."""
        return keyset_from_base_key(cls.__name__.lower())

    @classmethod
    async def asave(cls, keyset: Keyset, flow_run_id: uuid.UUID | None = None) -> None:
        """``save`` for async code."""
        await asyncio.to_thread(save_schema, cls, keyset, flow_run_id)

    @classmethod
    @async_dispatch(asave)
    def save(cls, keyset: Keyset, flow_run_id: uuid.UUID | None = None) -> None:
        """Store this model's JSON schema (and description) for the flow run."""
        save_schema(cls, keyset, flow_run_id)

    @classmethod
    async def aload(cls, keyset: Keyset, flow_run_id: uuid.UUID | None = None) -> Any:
        """``load`` for async code."""
        return await asyncio.to_thread(load_input, cls, keyset, flow_run_id)

    @classmethod
    @async_dispatch(aload)
    def load(cls, keyset: Keyset, flow_run_id: uuid.UUID | None = None) -> Any:
        """The input sent for the flow run, validated.

        Raises pydantic's ValidationError when it does not fit the model, and
        LookupError when nothing was sent.
        """
        return load_input(cls, keyset, flow_run_id)

    @classmethod
    def load_from_flow_run_input(cls, flow_run_input: Any) -> Any:
        """An instance from a stored input record (``key``, ``value`` JSON, ``flow_run_id``)."""
        instance = cls.model_validate_json(flow_run_input.value)
        instance._metadata = RunInputMetadata(
            key=flow_run_input.key,
            sender=getattr(flow_run_input, "sender", None),
            receiver=flow_run_input.flow_run_id,
        )
        return instance

    @classmethod
    def with_initial_data(cls, description: str | None = None, **defaults: Any) -> type[RunInput]:
        """A subclass whose fields default to ``defaults`` (shown to whoever resumes)."""
        fields: dict[str, Any] = {
            name: (info.annotation, defaults.get(name, info.default))
            for name, info in cls.model_fields.items()
        }
        model: type[RunInput] = create_model(cls.__name__, __base__=cls, **fields)
        if description is not None:
            model.__description__ = description
        return model

    @classmethod
    def subclass_from_base_model_type(cls, model_cls: type[BaseModel]) -> type[RunInput]:
        """A RunInput with the fields of the pydantic model ``model_cls``."""
        return type(model_cls.__name__, (cls, model_cls), {})


class AutomaticRunInput(RunInput):
    """Input of a plain type (``int``, ``str``, ...) carried in one field, ``value``."""

    value: Any

    @classmethod
    def subclass_from_type(cls, value_type: Any) -> type[AutomaticRunInput]:
        """An AutomaticRunInput whose ``value`` has type ``value_type``."""
        name = getattr(value_type, "__name__", None) or str(value_type)
        class_name = "".join(part.capitalize() for part in _words(name)) + "AutomaticRunInput"
        return create_model(class_name, __base__=cls, value=(value_type, ...))


def _words(name: str) -> list[str]:
    return [word for word in "".join(c if c.isalnum() else " " for c in name).split() if word]


def run_input_subclass_from_type(value_type: Any) -> type[RunInput]:
    """The RunInput for ``value_type``: itself, a pydantic model's fields, or ``value``."""
    if isinstance(value_type, type) and issubclass(value_type, RunInput):
        return value_type
    if isinstance(value_type, type) and issubclass(value_type, BaseModel):
        return RunInput.subclass_from_base_model_type(value_type)
    return AutomaticRunInput.subclass_from_type(value_type)


def save_schema(model: type[RunInput], keyset: Keyset, flow_run_id: uuid.UUID | None) -> None:
    """Store ``model``'s JSON schema, and its description if it has one, under ``keyset``."""
    write_input(keyset["schema"], model.model_json_schema(), flow_run_id)
    if model.__description__ is not None:
        write_input(keyset["description"], model.__description__, flow_run_id)


def load_input(model: type[RunInput], keyset: Keyset, flow_run_id: uuid.UUID | None) -> Any:
    """The input sent under ``keyset`` as ``model`` (an AutomaticRunInput's: its value).

    Raises LookupError when nothing was sent, pydantic's ValidationError when it does not fit.
    """
    receiver = ensure_flow_run_id(flow_run_id)
    raw = read_input_text(keyset["response"], receiver)
    if raw is None:
        raise LookupError(f"No input was sent under {keyset['response']!r}.")
    instance = model.model_validate_json(raw)
    instance._metadata = RunInputMetadata(key=keyset["response"], sender=None, receiver=receiver)
    if isinstance(instance, AutomaticRunInput):
        return instance.value
    return instance
