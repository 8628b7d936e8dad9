"""Reading and writing a flow run's input documents in the run store.

A flow run's input is JSON documents under string keys (``paused-1-schema``,
``paused-1-response``, ...), kept in the run store beside the run, so any
process sharing the store (``celerity runs resume``, a Celery coordinator)
sees them. Called in a flow run, these default to that run; elsewhere pass
``flow_run_id``. In async code they return awaitables.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from pydantic_core import to_jsonable_python

from engine.utilities.asyncutils import async_dispatch


def ensure_flow_run_id(flow_run_id: uuid.UUID | str | None = None) -> uuid.UUID:
    """``flow_run_id``, or the current flow run's id; RuntimeError when there is neither."""
    if flow_run_id is not None:
        return uuid.UUID(str(flow_run_id))
    from engine.context import FlowRunContext

    ctx = FlowRunContext.get()
    flow_run = getattr(ctx, "flow_run", None)
    if flow_run is None:
        raise RuntimeError("Outside a flow run, pass flow_run_id to name the flow run.")
    return flow_run.id


def write_input(key: str, value: Any, flow_run_id: uuid.UUID | str | None = None) -> None:
    """Store ``value`` (anything pydantic can turn into JSON) under ``key``."""
    from engine.store import get_store

    document = json.dumps(to_jsonable_python(value))
    get_store().set_run_input(ensure_flow_run_id(flow_run_id), key, document)


def read_input_text(key: str, flow_run_id: uuid.UUID | str | None = None) -> str | None:
    """The JSON text under ``key``, or None."""
    from engine.store import get_store

    return get_store().read_run_input(ensure_flow_run_id(flow_run_id), key)


def read_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> Any:
    """The value under ``key``, or None."""
    raw = read_input_text(key, flow_run_id)
    return None if raw is None else json.loads(raw)


async def acreate_flow_run_input(
    key: str, value: Any, flow_run_id: uuid.UUID | str | None = None
) -> None:
    """``create_flow_run_input`` for async code."""
    await asyncio.to_thread(write_input, key, value, flow_run_id)


@async_dispatch(acreate_flow_run_input)
def create_flow_run_input(key: str, value: Any, flow_run_id: uuid.UUID | str | None = None) -> None:
    """Store ``value`` under ``key`` for the flow run (the current one by default)."""
    write_input(key, value, flow_run_id)


async def aread_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> Any:
    """``read_flow_run_input`` for async code."""
    return await asyncio.to_thread(read_input, key, flow_run_id)


@async_dispatch(aread_flow_run_input)
def read_flow_run_input(key: str, flow_run_id: uuid.UUID | str | None = None) -> Any:
    """The value under ``key`` for the flow run (the current one by default), or None."""
    return read_input(key, flow_run_id)
