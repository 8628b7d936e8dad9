"""Continuations: downstream task runs released by Redis, not by the coordinator.

A task run whose upstreams are still running can be *deferred*: its signed
envelope is parked in Redis (``lua/defer.lua``) and it is added to each
upstream's waiters. The atomic step that makes an upstream final
(``lua/compare_and_set.lua``) then counts it down and hands back the envelopes
of the runs it released; the process that finished the upstream (a worker)
verifies them and sends them on, or runs one itself (the store's
``release_handler``). A chain hop then goes worker to worker, like a Celery
chain, while every run is still tracked in the store.

Only completion (or a failure the waiter allows) counts down; a run blocked by
a failed upstream is never released here, and the coordinator marks it
NotReady. The scripts name keys they compute, which is fine on one Redis
server (not on Redis Cluster).
"""

from __future__ import annotations

import uuid
from importlib.resources import files

from engine.store import keys


def lua(name: str) -> str:
    """The text of one of the store's Lua scripts (``engine/store/lua/<name>.lua``)."""
    return (files("engine.store") / "lua" / f"{name}.lua").read_text()


def defer_keys(prefix: str, run_id: uuid.UUID, upstream_ids: list[uuid.UUID]) -> list[str]:
    """The KEYS of ``defer.lua`` for a run and its upstreams."""
    found = [keys.pending(prefix, run_id), keys.remaining(prefix, run_id)]
    for upstream in upstream_ids:
        found += [keys.run(prefix, upstream), keys.waiters(prefix, upstream)]
    return found
