"""Continuations: downstream task runs released by Redis, not by the coordinator.

A task run whose upstreams are still running can be *deferred*: its envelope
is parked in Redis and it is added to each upstream's waiters. The atomic step
that makes an upstream final then counts it down, and hands back the envelopes
of the runs it released; the process that finished the upstream (a worker)
sends them on, or runs one itself. A chain hop then goes worker to worker,
like a Celery chain, while every run is still tracked in the store.

Only completion (or a failure the waiter allows) counts down; a run blocked by
a failed upstream is never released here, and the coordinator marks it
NotReady. The scripts name keys they compute, which is fine on one Redis
server (not on Redis Cluster).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

# Part of the compare-and-set script (see ``engine.store.redis``): release the
# waiters of the run that just became final. KEYS[5]: its waiters set.
# ARGV[8]: '1' completed, '0' other final state, '' no release.
RELEASE_LUA = """
local released = {}
if ARGV[8] ~= '' then
  local members = redis.call('SMEMBERS', KEYS[5])
  for _, member in ipairs(members) do
    local allowed = string.sub(member, 1, 1)
    local sep = string.find(member, '|', 3, true)
    local remaining_key = string.sub(member, 3, sep - 1)
    local pending_key = string.sub(member, sep + 1)
    if ARGV[8] == '1' or allowed == '1' then
      if redis.call('DECR', remaining_key) == 0 then
        local envelope = redis.call('GET', pending_key)
        if envelope then
          table.insert(released, envelope)
        end
        redis.call('DEL', pending_key, remaining_key)
      end
    end
  end
  redis.call('DEL', KEYS[5])
end
"""

# Park a run's envelope until its upstreams finish. KEYS: pending, remaining,
# then (run, waiters) per upstream. ARGV: envelope, ttl, then an allow-failure
# flag per upstream. Returns -1 if an upstream already failed (not allowed),
# 0 if every upstream already completed (send it now), else how many it waits on.
DEFER_LUA = """
local function final_type(raw)
  if not raw then
    return nil
  end
  local ok, doc = pcall(cjson.decode, raw)
  if not ok or type(doc.run) ~= 'table' or type(doc.run.state) ~= 'table' then
    return nil
  end
  local state = doc.run.state
  if state.type == 'PENDING' and state.name == 'NotReady' then
    return 'NOTREADY'
  end
  if state.type == 'COMPLETED' or state.type == 'FAILED' or state.type == 'CRASHED'
      or state.type == 'CANCELLED' then
    return state.type
  end
  return nil
end

local upstreams = (#KEYS - 2) / 2
local joined = {}
for i = 1, upstreams do
  local allowed = ARGV[2 + i]
  local member = allowed .. '|' .. KEYS[2] .. '|' .. KEYS[1]
  local kind = final_type(redis.call('GET', KEYS[1 + 2 * i]))
  if kind == nil then
    redis.call('SADD', KEYS[2 + 2 * i], member)
    table.insert(joined, {KEYS[2 + 2 * i], member})
  elseif kind ~= 'COMPLETED' and allowed ~= '1' then
    for _, pair in ipairs(joined) do
      redis.call('SREM', pair[1], pair[2])
    end
    return -1
  end
end
if #joined == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], #joined, 'EX', ARGV[2])
return #joined
"""

ReleaseHandler = Callable[[list[bytes]], None]

_handler: ReleaseHandler | None = None
_lock = threading.Lock()


def set_release_handler(handler: ReleaseHandler | None) -> None:
    """Who sends on the envelopes of runs released in this process."""
    global _handler
    with _lock:
        _handler = handler


def hand_over(envelopes: list[bytes]) -> None:
    """Pass released envelopes to the process's handler."""
    if envelopes and _handler is not None:
        _handler(envelopes)


def defer_keys(prefix: str, run_id: uuid.UUID, upstream_ids: list[uuid.UUID]) -> list[str]:
    """The KEYS of ``DEFER_LUA`` for a run and its upstreams."""
    from engine.store import keys

    found = [keys.pending(prefix, run_id), keys.remaining(prefix, run_id)]
    for upstream in upstream_ids:
        found += [keys.run(prefix, upstream), keys.waiters(prefix, upstream)]
    return found
