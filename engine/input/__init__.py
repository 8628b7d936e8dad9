"""Flow run input: typed data a person (or program) sends to a paused flow run."""

from __future__ import annotations

from typing import Any

from engine.input.actions import create_flow_run_input, read_flow_run_input
from engine.input.run_input import (
    AutomaticRunInput,
    Keyset,
    RunInput,
    RunInputMetadata,
    keyset_from_base_key,
    keyset_from_paused_state,
    run_input_subclass_from_type,
)


def input_model(wait_for_input: Any) -> type[RunInput]:
    """The RunInput model for ``wait_for_input`` (a model class, or a plain type as ``value``)."""
    return run_input_subclass_from_type(wait_for_input)


__all__ = [
    "AutomaticRunInput",
    "Keyset",
    "RunInput",
    "RunInputMetadata",
    "create_flow_run_input",
    "input_model",
    "keyset_from_base_key",
    "keyset_from_paused_state",
    "read_flow_run_input",
    "run_input_subclass_from_type",
]
