"""Placeholders for upstream values that a worker reads from the store.

A deferred task run is packed before its upstreams finish, so its envelope
carries ``UpstreamRef(task_run_id)`` where the coordinator would otherwise put
the upstream's final state. The worker swaps each placeholder for the
upstream's state as the store has it now (one round trip for all of them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from engine.store import get_store
from engine.utilities.collections import collect, visit_collection


@dataclass(frozen=True)
class UpstreamRef:
    """Stands for the value of the upstream task run ``task_run_id``."""

    task_run_id: uuid.UUID


def resolve_upstream_refs(parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` with every placeholder replaced by its run's current state."""
    refs = collect(parameters, lambda item: isinstance(item, UpstreamRef))
    if not refs:
        return parameters
    ids = list({ref.task_run_id for ref in refs})
    runs = get_store().runs_with_leases(ids)  # type: ignore[attr-defined]
    states = {run_id: run.state for run_id, (run, _) in zip(ids, runs, strict=True) if run}

    def visit(item: Any) -> Any:
        if isinstance(item, UpstreamRef):
            return states.get(item.task_run_id)
        return item

    return visit_collection(parameters, visit)  # type: ignore[no-any-return]
