"""Every Redis key Celerity uses, built in one place.

All keys live under a configurable prefix (default ``"celerity"``) so that
several deployments, or several test cases, can share one Redis database.
Keep every key name here: nothing else should format a key by hand.
"""

from __future__ import annotations

import uuid

DEFAULT_PREFIX = "celerity"

# Runs created outside any flow run (a task called on its own) are filed here.
NO_FLOW_RUN = "none"


def _flow(flow_run_id: uuid.UUID | None) -> str:
    return str(flow_run_id) if flow_run_id is not None else NO_FLOW_RUN


def run(prefix: str, run_id: uuid.UUID) -> str:
    """A flow run or task run as JSON (string)."""
    return f"{prefix}:run:{run_id}"


def history(prefix: str, run_id: uuid.UUID) -> str:
    """A run's accepted states as JSON, oldest first (list)."""
    return f"{prefix}:history:{run_id}"


def flow_task_runs(prefix: str, flow_run_id: uuid.UUID | None) -> str:
    """The ids of a flow run's task runs, in creation order (list)."""
    return f"{prefix}:flow-task-runs:{_flow(flow_run_id)}"


def flow_runs_index(prefix: str) -> str:
    """Every flow run id scored by its creation time (sorted set)."""
    return f"{prefix}:flow-runs"


def logs(prefix: str, flow_run_id: uuid.UUID | None) -> str:
    """A flow run's log lines as JSON, its task runs' included (list)."""
    return f"{prefix}:logs:{_flow(flow_run_id)}"


def run_input(prefix: str, flow_run_id: uuid.UUID, key: str) -> str:
    """One flow run input document (string)."""
    return f"{prefix}:run-input:{flow_run_id}:{key}"


def run_input_keys(prefix: str, flow_run_id: uuid.UUID) -> str:
    """The input keys set for a flow run, so they can expire with it (set)."""
    return f"{prefix}:run-input-keys:{flow_run_id}"


def events(prefix: str, flow_run_id: uuid.UUID) -> str:
    """A flow run's event stream: task completions for its coordinator (stream)."""
    return f"{prefix}:events:{flow_run_id}"


def lease(prefix: str, run_id: uuid.UUID) -> str:
    """The lease a worker holds (and renews) while a task run is Running."""
    return f"{prefix}:lease:{run_id}"


def pending(prefix: str, run_id: uuid.UUID) -> str:
    """A deferred task run's envelope, waiting for its upstreams."""
    return f"{prefix}:pending:{run_id}"


def remaining(prefix: str, run_id: uuid.UUID) -> str:
    """How many upstreams a deferred task run still waits for."""
    return f"{prefix}:remaining:{run_id}"


def waiters(prefix: str, run_id: uuid.UUID) -> str:
    """The deferred task runs waiting for this run to finish."""
    return f"{prefix}:waiters:{run_id}"


def cache(prefix: str, cache_key: str) -> str:
    """A cached task result, by cache key."""
    return f"{prefix}:cache:{cache_key}"


def active_flow_runs(prefix: str) -> str:
    """Ids of flow runs that have started and not finished: what sweepers check (set)."""
    return f"{prefix}:active-flow-runs"


def queue_progress(prefix: str, queue: str) -> str:
    """The newest send time of a message a worker has started on a queue (string)."""
    return f"{prefix}:queue-progress:{queue}"
