"""Helpers for the chaos fault tests: processes, deadlines, and the execution ledger.

The ledger reads what ``chaos_flows`` task bodies recorded in Redis and checks
it against the run store: every run final, each logical task completed by
exactly one task run, and each attempt of a task run executed its body to the
end at most once (exactly once for the attempt that reached Completed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from engine.store import get_store
from workers.dev import celerity_command

from .chaos_flows import REDUCE_ITEM

POLL_SECONDS = 0.05


# --- deadlines -------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    explain: Callable[[], str] = lambda: "",
    poll: float = POLL_SECONDS,
) -> float:
    """Poll ``condition`` (a process or store condition: no event to wait on) until it is
    true; the seconds it took. Fails the test with ``what`` after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s\n{explain()}")
        time.sleep(poll)
    return time.monotonic() - start


def recorded_flow_run_id(url: str, key: str) -> uuid.UUID | None:
    """The id of the flow run that ``chaos_flows`` recorded under ``key``, once it started."""
    client = redis.Redis.from_url(url)
    try:
        value = client.get(f"{key}:flow-run-id")
    finally:
        client.close()
    return uuid.UUID(value.decode()) if value else None


def recorded_flow_pids(url: str, key: str) -> list[int]:
    """The pids of the processes that ran the flow function, in order."""
    client = redis.Redis.from_url(url)
    try:
        return [int(pid) for pid in client.lrange(f"{key}:flow-pids", 0, -1)]
    finally:
        client.close()


def flow_run_state(flow_run_id: uuid.UUID) -> Any:
    return get_store().read_flow_run(flow_run_id).state


def state_names(run_id: uuid.UUID) -> list[str]:
    return [state.name for state in get_store().read_state_history(run_id)]


# --- processes ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, not yet reaped) does not."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children[int(fields[1])].append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return [p for p in found if alive(p)]


def kill_whole(process: subprocess.Popen[Any]) -> list[int]:
    """SIGKILL a process and every process below it (a worker and its pool children) at
    once, as a lost machine would; the pids killed."""
    pids = [process.pid, *descendants(process.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    return pids


def start_worker(fleet: Any, name: str, concurrency: int = 2, *extra: str) -> subprocess.Popen:
    """One more ``celerity worker`` in the fleet's group, logging to the fleet's log."""
    argv = celerity_command("worker", "start", "-c", str(concurrency), "--pool", "prefork", *extra)
    with open(fleet.log_path, "ab") as log:  # the child keeps its own copy
        return fleet.group.start(name, argv, fleet.env, log)


def start_coordinator(fleet: Any, name: str) -> subprocess.Popen:
    with open(fleet.log_path, "ab") as log:
        return fleet.group.start(name, celerity_command("coordinator", "start"), fleet.env, log)


def fleet_process(fleet: Any, name: str) -> subprocess.Popen:
    return next(p for n, p in fleet.group.processes if n == name)


def assert_only_killed_exited(fleet: Any, killed: Iterable[str]) -> None:
    """No fleet process died but those the test killed."""
    unexpected = [(n, code) for n, code in fleet.group.exited() if n not in set(killed)]
    assert unexpected == [], (unexpected, fleet.log_tail())


# --- the ledger --------------------------------------------------------------------------

Attempt = tuple[str, str, int]  # (item, task run id, run count)


@dataclass
class Ledger:
    """The execution tokens task bodies recorded under ``key`` (see ``chaos_flows``)."""

    started: list[tuple[Attempt, str]] = field(default_factory=list)
    finished: list[tuple[Attempt, str]] = field(default_factory=list)

    @classmethod
    def read(cls, url: str, key: str) -> Ledger:
        client = redis.Redis.from_url(url)
        try:
            return cls(
                started=_tokens(client.smembers(f"{key}:started")),
                finished=_tokens(client.smembers(f"{key}:finished")),
            )
        finally:
            client.close()

    def items(self, which: str = "finished") -> Counter[str]:
        """Body executions per logical task (map index or ``total``)."""
        return Counter(attempt[0] for attempt, _ in getattr(self, which))

    def finished_items(self) -> set[str]:
        return {attempt[0] for attempt, _ in self.finished}


def _tokens(members: Iterable[bytes]) -> list[tuple[Attempt, str]]:
    out = []
    for member in members:
        item, run_id, run_count, nonce = member.decode().split("|")
        out.append(((item, run_id, int(run_count)), nonce))
    return out


def item_names(n: int) -> list[str]:
    return [*map(str, range(n)), REDUCE_ITEM]


@dataclass
class Accounting:
    """What ``account`` found: the task runs, and finished bodies whose attempt was lost."""

    task_runs: list[Any]
    lost_after_finishing: list[Attempt]


def account(flow_run_id: uuid.UUID, ledger: Ledger, items: list[str]) -> Accounting:
    """Check the ledger against the run store; fail the test on any violation.

    - every task run of the flow run is final;
    - every logical task was completed by exactly one task run;
    - no attempt ran its body twice: at most one started and one finished token
      per (item, task run, run count);
    - the attempt that reached Completed finished its body exactly once, and
      each run's history shows Completed at most once.

    A finished body whose attempt did not reach Completed is returned (its
    process was killed between the body's end and the compare-and-set, so the
    run took a new attempt): at-least-once delivery allows it, and only tests
    that kill workers may see it.
    """
    store = get_store()
    task_runs = store.read_task_runs(flow_run_id)
    not_final = [(r.name, r.state.name if r.state else None) for r in task_runs]
    not_final = [pair for pair, r in zip(not_final, task_runs, strict=True) if not _final(r)]
    assert not_final == [], f"task runs not final: {not_final}"

    for which in ("started", "finished"):
        per_attempt = Counter(attempt for attempt, _ in getattr(ledger, which))
        twice = {a: c for a, c in per_attempt.items() if c > 1}
        assert twice == {}, f"an attempt {which} its body more than once: {twice}"

    completed = {str(r.id): r for r in task_runs if r.state.is_completed()}
    finished_by_run = {(run_id, count): item for (item, run_id, count), _ in ledger.finished}
    completed_items: Counter[str] = Counter()
    for run_id, run in completed.items():
        item = finished_by_run.get((run_id, run.run_count))
        assert item is not None, (
            f"task run {run.name} is Completed (attempt {run.run_count}) but no body of "
            f"that attempt finished: {state_names(run.id)}"
        )
        completed_items[item] += 1
        assert state_names(run.id).count("Completed") == 1, state_names(run.id)
    assert sorted(completed_items) == sorted(items), (
        f"items not completed: {sorted(set(items) - set(completed_items))}; "
        f"unexpected: {sorted(set(completed_items) - set(items))}"
    )
    assert set(completed_items.values()) == {1}, {
        item: c for item, c in completed_items.items() if c != 1
    }
    lost = [
        attempt
        for attempt, _ in ledger.finished
        if (attempt[1], attempt[2]) not in {(i, r.run_count) for i, r in completed.items()}
    ]
    for _, run_id, count in lost:
        # Its attempt was lost: the run went on to a later attempt (or was ended with its flow run).
        run = store.read_task_run(uuid.UUID(run_id))
        assert run.run_count > count or not run.state.is_completed(), (run_id, count)
    return Accounting(task_runs, lost)


def _final(run: Any) -> bool:
    return run.state is not None and run.state.is_final()
