"""Completion events: how workers tell a coordinator that a task run is final.

Each flow run has one Redis stream (key from ``engine.store.keys.events``).
The Redis run store appends ``{task_run_id, state}`` in the same atomic step
that moves a task run to a final state (or NotReady); the coordinator's
listener reads the streams of its active flow runs and completes the matching
futures.
"""

from __future__ import annotations

import uuid
from typing import Any

from engine.states import State
from engine.store import keys


def stream_key(prefix: str, flow_run_id: uuid.UUID) -> str:
    """The event stream of one flow run."""
    return keys.events(prefix, flow_run_id)


def parse_completion(fields: dict[bytes, bytes]) -> tuple[uuid.UUID, State[Any]]:
    """The run id and final state carried by a stream entry."""
    task_run_id = uuid.UUID(fields[b"task_run_id"].decode())
    return task_run_id, State.model_validate_json(fields[b"state"])
