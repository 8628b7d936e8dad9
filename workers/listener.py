"""The coordinator's single listener: reads completion streams, completes futures.

The Redis run store appends ``{task_run_id, state}`` to a flow run's stream in
the same atomic step that makes a task run final (or NotReady).

One daemon thread per process and store reads the event streams of every
active flow run with a blocking XREAD. It remembers the last id read per
stream, so after a lost connection it resumes where it stopped and no
completion is missed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import redis

from engine.futures import BaseFuture
from engine.logging.echo import FLEET_LOG_ECHO
from engine.store import keys
from workers.publishing import collecting

logger = logging.getLogger("celerity.listener")

_BLOCK_MS = 200
_RUNS_PER_MESSAGE = 16
_listeners: dict[tuple[str, str], CompletionListener] = {}
_listeners_lock = threading.Lock()


class CompletionListener:
    """Completes registered futures from the event streams of their flow runs."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._futures: dict[uuid.UUID, BaseFuture[Any]] = {}
        self._streams: dict[str, str] = {}  # stream key -> last id read
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="celerity-listener", daemon=True)
        self._thread.start()

    def watch_flow_run(self, flow_run_id: uuid.UUID) -> None:
        """Start reading a flow run's stream (from its beginning)."""
        with self._lock:
            self._streams.setdefault(keys.events(self.prefix, flow_run_id), "0-0")
        self._wake.set()
        FLEET_LOG_ECHO.follow(flow_run_id)  # prints its workers' lines, when asked

    def unwatch_flow_run(self, flow_run_id: uuid.UUID) -> None:
        """Stop reading a flow run's stream."""
        with self._lock:
            self._streams.pop(keys.events(self.prefix, flow_run_id), None)
        FLEET_LOG_ECHO.stop(flow_run_id)

    def register(self, future: BaseFuture[Any]) -> None:
        """Complete ``future`` when its run's completion event arrives."""
        with self._lock:
            self._futures[future.task_run_id] = future

    def _loop(self) -> None:
        backoff = 0.1
        while True:
            with self._lock:
                streams = dict(self._streams)
            if not streams:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                replies = self.client.xread(streams, count=1000, block=_BLOCK_MS)  # type: ignore[arg-type]
                backoff = 0.1
            except redis.RedisError as exc:
                logger.warning("Event stream read failed (%s); retrying in %.1fs.", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            # Downstream runs released by this read go out together.
            with collecting(_RUNS_PER_MESSAGE):
                for stream, entries in replies or []:
                    self._handle(stream.decode() if isinstance(stream, bytes) else stream, entries)

    def _handle(self, stream: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        if FLEET_LOG_ECHO.enabled:
            # The ended task runs' lines are in the store before their events: print them
            # before the flow run goes on with their results.
            FLEET_LOG_ECHO.flush(uuid.UUID(stream.rsplit(":", 1)[1]))
        last_id = None
        for entry_id, fields in entries:
            last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            try:
                task_run_id = uuid.UUID(fields[b"task_run_id"].decode())
            except Exception:  # a malformed entry must not stop the listener
                logger.exception("Ignoring a malformed completion event %s.", last_id)
                continue
            with self._lock:
                future = self._futures.pop(task_run_id, None)
            if future is not None:
                # Parsed only when someone reads the state: most futures of a
                # big map are only waited on.
                future.set_final_state_json(fields[b"state"])
        with self._lock:
            if last_id is not None and stream in self._streams:
                self._streams[stream] = last_id


def get_listener(client: redis.Redis, prefix: str) -> CompletionListener:
    """The process's listener for this Redis and key prefix (started on first use)."""
    pool = client.connection_pool.connection_kwargs
    key = (f"{pool.get('host')}:{pool.get('port')}/{pool.get('db')}", prefix)
    with _listeners_lock:
        if key not in _listeners:
            _listeners[key] = CompletionListener(_own_client(client), prefix)
        return _listeners[key]


def _own_client(client: redis.Redis) -> redis.Redis:
    # A blocking XREAD holds its connection; give the listener its own pool.
    kwargs = dict(client.connection_pool.connection_kwargs)
    kwargs["socket_timeout"] = max(float(kwargs.get("socket_timeout") or 0), 5.0)
    return redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=client.connection_pool.connection_class, **kwargs
        )
    )
