"""Printing, in the process that runs a flow, the log lines its task runs write on workers.

A task run that a Celery worker runs logs on that worker's console and into
the run store; the process running the flow (``celerity flow run``) would
print none of it. Inside ``echo_fleet_logs()`` this process follows the log
lists of the flow runs whose task runs it sends to the fleet (the completion
listener tells it which: ``follow`` and ``stop``), and prints each line that
another process wrote through the ``celerity`` console handler, as if it had
been logged here: same format, the task run's name, the worker's timestamp.

Nothing of this runs on a worker or a coordinator: they never turn it on.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from engine.logging.tail import RunLogLine, RunLogTail

ECHO_LOGGER = "celerity.fleet_logs"
POLL_SECONDS = 0.25
# Marks a record printed from the store, so no handler stores it a second time.
ECHOED = "celerity_echoed"

logger = logging.getLogger(__name__)


class FleetLogEcho:
    """Follows flow runs' log lists in a daemon thread; prints the lines of other processes."""

    def __init__(self) -> None:
        self.enabled = False
        self._tails: dict[uuid.UUID, RunLogTail] = {}
        # Runs that logged in this process: their lines were printed here already.
        self._local_runs: set[uuid.UUID] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def enable(self) -> None:
        """Follow and print from now on (``follow`` starts the thread)."""
        self._wake.clear()
        self.enabled = True

    def disable(self) -> None:
        """Stop printing; the thread ends at its next wake-up."""
        self.enabled = False
        self._wake.set()
        with self._lock:
            self._tails.clear()
        self._local_runs.clear()

    def note_local(self, run_id: uuid.UUID | None) -> None:
        """``run_id`` logs in this process (the run store handler says so, while enabled)."""
        if run_id is not None:
            self._local_runs.add(run_id)

    def follow(self, flow_run_id: uuid.UUID) -> None:
        """Start printing the lines of ``flow_run_id`` (from its first), if enabled."""
        if not self.enabled:
            return
        from engine.store import get_store

        tail = RunLogTail(get_store(), flow_run_id, subflows=False)
        with self._lock:
            self._tails.setdefault(flow_run_id, tail)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="celerity-log-echo", daemon=True
                )
                self._thread.start()

    def flush(self, flow_run_id: uuid.UUID) -> None:
        """Print the lines of ``flow_run_id`` written so far (a task run of it just ended)."""
        with self._lock:
            tail = self._tails.get(flow_run_id)
            if tail is not None:
                self._print(tail)

    def stop(self, flow_run_id: uuid.UUID) -> None:
        """Print what is left of ``flow_run_id``'s lines, then stop following it."""
        with self._lock:
            tail = self._tails.pop(flow_run_id, None)
            if tail is not None:
                self._print(tail)  # under the lock: not at the same time as the thread

    def _loop(self) -> None:
        while self.enabled:
            with self._lock:
                for tail in list(self._tails.values()):
                    self._print(tail)
            self._wake.wait(POLL_SECONDS)

    def _print(self, tail: RunLogTail) -> None:
        try:
            lines = tail.poll()
        except Exception as exc:  # the store is away: try again at the next poll
            logger.debug("Could not read the logs of flow run %s: %s", tail.flow_run_id, exc)
            return
        for line in lines:
            if self._written_elsewhere(line):
                _print_line(line)

    def _written_elsewhere(self, line: RunLogLine) -> bool:
        log = line.log
        return (log.task_run_id or log.flow_run_id) not in self._local_runs


def _print_line(line: RunLogLine) -> None:
    """Hand ``line`` to the console handlers as a record, as if it had been logged here."""
    log = line.log
    echo_logger = logging.getLogger(ECHO_LOGGER)
    if not echo_logger.isEnabledFor(log.level):
        return
    record = logging.LogRecord(log.name, log.level, "", 0, log.message, None, None)
    record.created = log.timestamp.timestamp()
    record.msecs = (record.created - int(record.created)) * 1000
    record.__dict__.update(
        {
            ECHOED: True,
            "flow_run_id": str(log.flow_run_id),
            "flow_run_name": line.flow_run_name,
            "task_run_id": str(log.task_run_id) if log.task_run_id else None,
            "task_run_name": line.task_run_name,
        }
    )
    echo_logger.handle(record)


FLEET_LOG_ECHO = FleetLogEcho()


@contextmanager
def echo_fleet_logs(enabled: bool = True) -> Iterator[None]:
    """Inside the block, the fleet's lines of flow runs run here are printed here too."""
    from engine.logging.configuration import ensure_logging_setup

    if not enabled:
        yield
        return
    ensure_logging_setup()
    FLEET_LOG_ECHO.enable()
    try:
        yield
    finally:
        FLEET_LOG_ECHO.disable()
