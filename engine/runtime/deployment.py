"""Deployment facts; Celerity has no deployments, so every attribute is empty."""

from __future__ import annotations

from typing import Any

_ATTRIBUTES = ["id", "flow_run_id", "name", "version", "parameters"]


def __getattr__(name: str) -> Any:
    if name not in _ATTRIBUTES:
        raise AttributeError(f"{__name__} has no attribute {name!r}")
    if name == "flow_run_id":
        from engine.runtime import flow_run

        return flow_run.id
    return {} if name == "parameters" else None


def __dir__() -> list[str]:
    return list(_ATTRIBUTES)
