"""Flow run input: typed data a person (or program) sends to a paused flow run."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model


class RunInput(BaseModel):
    """Base class for the input a paused flow run waits for.

    Example::

        class Approval(RunInput):
            approved: bool
            note: str = ""

        approval = pause_flow_run(wait_for_input=Approval, timeout=600)
    """

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def with_initial_data(cls, description: str | None = None, **defaults: Any) -> type[RunInput]:
        """A subclass whose fields default to ``defaults`` (shown to whoever resumes)."""
        fields: dict[str, Any] = {
            name: (info.annotation, defaults.get(name, info.default))
            for name, info in cls.model_fields.items()
        }
        model = create_model(cls.__name__, __base__=RunInput, **fields)
        if description:
            model.__doc__ = description
        return model


def input_model(wait_for_input: Any) -> type[BaseModel]:
    """A pydantic model for ``wait_for_input`` (a model class, or a plain type as ``value``)."""
    if isinstance(wait_for_input, type) and issubclass(wait_for_input, BaseModel):
        return wait_for_input
    return create_model("RunInputValue", value=(wait_for_input, ...))


__all__ = ["RunInput", "input_model"]
