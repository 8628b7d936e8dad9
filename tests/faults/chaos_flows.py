"""The flows and tasks the chaos fault tests run on a real fleet.

Fleet processes import this module by name (``faults.chaos_flows``, with
``tests/`` on their path) or from its file (``celerity flow run FILE:FUNC``),
so it imports nothing relative and nothing from the tests but the engine.

Every task body records its execution in Redis, on the fleet's own server,
before doing anything else and again just before it returns:

- ``<key>:started`` and ``<key>:finished`` are sets of *execution tokens*
  ``"<item>|<task run id>|<run count>|<nonce>"``: which logical task (the map
  index, or ``total``), which task run and which attempt of it (its
  ``run_count`` once Running), and a nonce drawn once per body execution. A
  token is a set member, so a write retried across a Redis restart (whose
  reply was lost) is not counted twice, while two executions of one attempt
  still show as two tokens with different nonces.
- ``<key>:flow-pids`` lists the pid of every process that ran the flow
  function, ``<key>:flow-run-id`` holds the flow run's id.

Some map items can be *held*: ``<key>:hold`` is a set of item numbers; in the
flow run's first attempt a held item blocks on ``<key>:gate:<item>`` until the
test pushes ``go`` (finish) or ``abandon`` (end without finishing, as if the
attempt had been killed). Later attempts never block.
"""

from __future__ import annotations

import os
import time
import uuid

import redis

from engine import flow, task, unmapped
from engine.runtime import flow_run as current_flow_run
from engine.runtime import task_run as current_task_run

# A recording survives a Redis restart: it is retried this long before giving up.
RECORD_RETRY_SECONDS = 30.0
# A held item that is never released gives up after this long (a test failed).
GATE_TIMEOUT_SECONDS = 90
REDUCE_ITEM = "total"

_clients: dict[int, redis.Redis] = {}


class Abandoned(Exception):
    """A held task body told by the test to end without finishing."""


def client() -> redis.Redis:
    """One Redis client per process (pool children fork from the worker)."""
    pid = os.getpid()
    if pid not in _clients:
        # A held body blocks on the gate longer than redis-py's default socket timeout (5 s)
        url = os.environ["CELERITY_BROKER_URL"]
        _clients[pid] = redis.Redis.from_url(url, socket_timeout=GATE_TIMEOUT_SECONDS + 10)
    return _clients[pid]


def _retrying(command, *args):
    deadline = time.monotonic() + RECORD_RETRY_SECONDS
    while True:
        try:
            return command(*args)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # Redis is restarting: try again shortly


def execution_token(item: object) -> str:
    """This body execution's token: item, task run, attempt, nonce."""
    return "|".join(
        [str(item), current_task_run.id, str(current_task_run.run_count), uuid.uuid4().hex[:12]]
    )


def record(key: str, token: str) -> None:
    _retrying(client().sadd, key, token)


def _held(key: str, item: int, attempt: int) -> bool:
    return attempt == 1 and bool(_retrying(client().sismember, f"{key}:hold", item))


@task
def square(key: str, item: int, attempt: int = 1, work_seconds: float = 0.0) -> int:
    """``item * item``, recording its execution; held items wait for the test's word."""
    token = execution_token(item)
    record(f"{key}:started", token)
    if work_seconds:
        time.sleep(work_seconds)  # the task's "work"
    if _held(key, item, attempt):
        popped = client().blpop([f"{key}:gate:{item}"], timeout=GATE_TIMEOUT_SECONDS)
        if popped is None or popped[1] != b"go":
            raise Abandoned(f"item {item} abandoned by the test")
    record(f"{key}:finished", token)
    return item * item


@task
def total(key: str, values: list[int]) -> int:
    """The reduce: the sum of the map's values, recording its execution."""
    token = execution_token(REDUCE_ITEM)
    record(f"{key}:started", token)
    result = sum(values)
    record(f"{key}:finished", token)
    return result


def _note_flow_process(key: str) -> int:
    """Record this flow process and run; the flow run's attempt number."""
    _retrying(client().rpush, f"{key}:flow-pids", os.getpid())
    _retrying(client().set, f"{key}:flow-run-id", str(current_flow_run.id))
    return int(current_flow_run.run_count)


def _map_reduce(key: str, n: int, work_seconds: float) -> int:
    attempt = _note_flow_process(key)
    squares = square.map(
        unmapped(key), range(n), attempt=unmapped(attempt), work_seconds=unmapped(work_seconds)
    )
    return total.submit(key, squares).result()


@flow
def map_reduce(key: str, n: int, work_seconds: float = 0.0) -> int:
    """Square 0..n-1 on the workers, then sum the squares in one more task run."""
    return _map_reduce(key, n, work_seconds)


@flow(retries=1)
def map_reduce_retried(key: str, n: int, work_seconds: float = 0.0) -> int:
    """``map_reduce`` with one flow retry."""
    return _map_reduce(key, n, work_seconds)


def expected_sum(n: int) -> int:
    return sum(i * i for i in range(n))
