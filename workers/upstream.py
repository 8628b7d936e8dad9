"""Placeholders for upstream values that a worker reads from the store.

A deferred task run is packed before its upstreams finish, so its envelope
carries ``UpstreamRef(task_run_id)`` where the coordinator would otherwise put
the upstream's final state. The worker swaps each placeholder for the
upstream's state as the store has it now (one round trip for all of them).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.states import State
from engine.store import get_store
from engine.utilities.collections import collect, visit_collection


@dataclass(frozen=True)
class UpstreamRef:
    """Stands for the value of the upstream task run ``task_run_id``."""

    task_run_id: uuid.UUID


def resolve_upstream_refs(
    parameters: dict[str, Any], finished_here: Mapping[uuid.UUID, State[Any]] | None = None
) -> dict[str, Any]:
    """``parameters`` with every placeholder replaced by its run's current state.

    ``finished_here`` holds final states this process has just had accepted
    (the upstream of a chain hop run in place): a final state never changes,
    so those need no read, and their values are already loaded.
    """
    refs = collect(parameters, lambda item: isinstance(item, UpstreamRef))
    if not refs:
        return parameters
    known = finished_here or {}
    wanted = {ref.task_run_id for ref in refs}
    states: dict[uuid.UUID, State[Any] | None] = {i: known[i] for i in wanted & known.keys()}
    if missing := list(wanted - states.keys()):
        runs = get_store().runs_with_leases(missing)  # type: ignore[attr-defined]
        states.update((i, run.state) for i, (run, _) in zip(missing, runs, strict=True) if run)

    def visit(item: Any) -> Any:
        if isinstance(item, UpstreamRef):
            return states.get(item.task_run_id)
        return item

    return visit_collection(parameters, visit)  # type: ignore[no-any-return]
