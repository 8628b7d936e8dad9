"""The run store contract: every store (in-memory, Redis) implements this.

The store keeps flow runs, task runs, their state histories, run logs and flow
run inputs. ``propose_state`` is an atomic compare-and-set governed by
``engine.orchestration.evaluate_transition``; it is the only way a run's state
changes.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from engine.orchestration import OrchestrationResult
from engine.schemas import FlowRun, RunLog, TaskRun
from engine.states import State


class RunStore(ABC):
    """Where runs, states, logs and run inputs live."""

    url: str = ""

    # --- flow runs ---------------------------------------------------------------

    @abstractmethod
    def create_flow_run(self, flow_run: FlowRun) -> FlowRun:
        """Store a new flow run; its ``state``, if set, starts its history."""

    @abstractmethod
    def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        """The flow run with that id; raises ObjectNotFound."""

    @abstractmethod
    def list_flow_runs(self, limit: int = 50) -> list[FlowRun]:
        """The most recently created flow runs, newest first."""

    # --- task runs ---------------------------------------------------------------

    @abstractmethod
    def create_task_runs(self, task_runs: Iterable[TaskRun]) -> list[TaskRun]:
        """Store many new task runs at once (one round trip where possible)."""

    def create_task_run(self, task_run: TaskRun) -> TaskRun:
        """Store one new task run."""
        return self.create_task_runs([task_run])[0]

    @abstractmethod
    def read_task_run(self, task_run_id: uuid.UUID) -> TaskRun:
        """The task run with that id; raises ObjectNotFound."""

    @abstractmethod
    def read_task_runs(self, flow_run_id: uuid.UUID) -> list[TaskRun]:
        """Every task run of a flow run, in creation order."""

    # --- states ------------------------------------------------------------------

    @abstractmethod
    def propose_state(
        self, run_id: uuid.UUID, state: State[Any], force: bool = False
    ) -> OrchestrationResult:
        """Atomically set a run's state if the transition rules allow it.

        Works for flow runs and task runs alike. ``force`` bypasses the rules
        (an explicit retry of a finished run). Raises ObjectNotFound.
        """

    @abstractmethod
    def read_state_history(self, run_id: uuid.UUID) -> list[State[Any]]:
        """Every accepted state of a run, oldest first."""

    # --- logs --------------------------------------------------------------------

    @abstractmethod
    def write_logs(self, logs: Iterable[RunLog]) -> None:
        """Append run log lines."""

    @abstractmethod
    def read_logs(self, flow_run_id: uuid.UUID, offset: int = 0) -> list[RunLog]:
        """A flow run's log lines (its task runs' included) from ``offset`` on."""

    # --- flow run input ------------------------------------------------------------

    @abstractmethod
    def set_run_input(self, flow_run_id: uuid.UUID, key: str, value: str) -> None:
        """Store a JSON document ``value`` under ``key`` for a flow run."""

    @abstractmethod
    def read_run_input(self, flow_run_id: uuid.UUID, key: str) -> str | None:
        """The JSON document under ``key``, or None."""

    # --- cache ------------------------------------------------------------------------

    @abstractmethod
    def write_cache(self, key: str, state: State[Any], expires_at: datetime | None = None) -> None:
        """Remember a completed state under a cache key, until ``expires_at`` if given."""

    @abstractmethod
    def read_cache(self, key: str) -> State[Any] | None:
        """The completed state cached under ``key``, or None if absent or expired."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections."""


ReleaseHandler = Callable[[list[bytes]], None]


class SharedRunStore(RunStore):
    """A run store that several processes share (Redis): what a fleet needs beyond the
    contract above.

    Leases tell the fleet which runs a live process holds: a task run is leased
    to its worker from the moment a worker takes its message (a *claim*) until it
    is final; a flow run is leased to the process that runs it until it is final.
    Every lease is renewed by ``engine.leases.lease_keeper`` in the holding
    process and lapses ``lease_seconds`` after that process dies. Deferred runs
    (continuations) are parked here and released by the atomic step that
    finishes their last upstream; ``release_handler`` is who sends them on in
    this process.
    """

    prefix: str = ""  # of every key it writes
    lease_seconds: float = 30.0
    release_handler: ReleaseHandler | None = None

    @property
    @abstractmethod
    def client(self) -> Any:
        """The underlying connection (the listener and result storage use it)."""

    # --- task run leases ------------------------------------------------------------

    @abstractmethod
    def prime(
        self, run_ids: list[uuid.UUID], claimant: str, queue: str | None, sent_at: float
    ) -> dict[uuid.UUID, str]:
        """Claim and read the runs of one message in one round trip; their lease holders.

        Each run without a lease is leased to ``claimant``; the runs are
        remembered so that their first proposals skip a read. ``queue`` and
        ``sent_at`` advance the queue's progress mark (``queue_progress``).
        """

    @abstractmethod
    def known_task_run(self, run_id: uuid.UUID) -> TaskRun | None:
        """The task run as this process last primed or wrote it (no read), or None."""

    @abstractmethod
    def lease_holder(self, run_id: uuid.UUID) -> str | None:
        """Who holds a run's lease, or None if there is none (lapsed or never taken)."""

    @abstractmethod
    def renew_leases(self, run_ids: list[uuid.UUID]) -> None:
        """Extend the leases of runs held here by ``lease_seconds`` (one round trip)."""

    @abstractmethod
    def runs_with_leases(
        self, run_ids: list[uuid.UUID]
    ) -> list[tuple[FlowRun | TaskRun | None, str | None]]:
        """Each run (None if gone) with its lease holder (None if none), in one round trip."""

    @abstractmethod
    def queue_progress(self, queue: str) -> float:
        """The newest send time of a message that a worker has started on ``queue`` (0 if none)."""

    # --- deferred runs ---------------------------------------------------------------

    @abstractmethod
    def defer(
        self, run_id: uuid.UUID, envelope: bytes, upstreams: list[tuple[uuid.UUID, bool]]
    ) -> int:
        """Park a signed envelope until its upstreams finish; -1 if one already failed
        (and is not allowed to), 0 if all completed (send it now), else how many remain."""

    @abstractmethod
    def cancel_deferred(self, run_id: uuid.UUID) -> bool:
        """Take a parked envelope back; False if it was already released."""

    def hand_over(self, envelopes: list[bytes]) -> None:
        """Pass envelopes released by a proposal made here to this process's handler."""
        if envelopes and self.release_handler is not None:
            self.release_handler(envelopes)

    # --- flow run leases ------------------------------------------------------------

    @abstractmethod
    def lapsed_flow_runs(self) -> list[FlowRun]:
        """Started, unfinished flow runs whose process no longer renews their lease."""

    @abstractmethod
    def propose_if_unleased(self, run_id: uuid.UUID, state: State[Any]) -> bool:
        """Propose ``state`` only if no process holds the run's lease; whether it was accepted.

        Sweepers end lapsed flow runs with it and coordinators take submitted
        ones: of several racing callers, exactly one wins.
        """
