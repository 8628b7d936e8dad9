"""The process running a flow run SIGKILLed mid-flow; the run is resumed, not redone.

A map of 20 tasks runs on two workers (four slots); items 0-14 complete, items
15-19 are held in their first attempt (they wait on a Redis key the test
controls), so the flow is reliably part way when its process is killed:

- the coordinator's main process (its flow child must die with it),
- the ``celerity flow run FILE:FUNC`` process (the workers keep running),
- a coordinator's flow child, for a flow with ``retries=1``.

The flow run's lease lapses and a sweeper (every worker and coordinator runs
one) ends it Crashed with its unfinished task runs within about 2 L; a new
attempt (``celerity runs retry ID``, or the flow's own retry) reuses the 15
completed task runs and runs only the rest. After the crash the test tells
the first attempt's held bodies to end without finishing, as if their runs'
work had been lost, which frees the worker slots.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from workers.producer import submit_flow_run

from .chaos import (
    Ledger,
    account,
    alive,
    assert_only_killed_exited,
    fleet_process,
    flow_run_state,
    item_names,
    recorded_flow_pids,
    recorded_flow_run_id,
    start_coordinator,
    state_names,
    wait_until,
)
from .chaos_flows import expected_sum, map_reduce, map_reduce_retried

pytestmark = pytest.mark.faults

N = 20
HELD = [15, 16, 17, 18, 19]
DONE_BEFORE = [str(i) for i in range(N) if i not in HELD]
SLOTS = 4  # 2 workers x concurrency 2: all taken by held items
LEASE = 2.0  # L
# A killed flow process's run is Crashed within this (its lease lapses within L,
# a sweep comes within another L; the rest is slack for two busy cores).
CRASHED_WITHIN = 4 * LEASE
# A flow child outlives its SIGKILLed coordinator by at most this (parent-death signal).
CHILD_GONE_WITHIN = 5.0
ATTEMPT_WITHIN = 60.0
CHAOS_FLOWS_FILE = Path(__file__).with_name("chaos_flows.py")


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def _hold(url: str, key: str) -> None:
    client = _client(url)
    try:
        client.sadd(f"{key}:hold", *HELD)
    finally:
        client.close()


def _abandon_held(url: str, key: str) -> None:
    """Let the first attempt's held bodies end without finishing (their runs are Crashed)."""
    client = _client(url)
    try:
        for item in HELD:
            client.rpush(f"{key}:gate:{item}", "abandon")
    finally:
        client.close()


def _part_way(url: str, key: str) -> bool:
    """Items 0-14 Completed and every worker slot busy with a held item."""
    ledger = Ledger.read(url, key)
    held_started = {item for item in ledger.items("started") if int(item) in HELD}
    if ledger.finished_items() != set(DONE_BEFORE) or len(held_started) != SLOTS:
        return False
    run_id = recorded_flow_run_id(url, key)  # a body finishes just before its run is Completed
    completed = [r for r in _task_runs(run_id) if r.state.is_completed()]
    return len(completed) == len(DONE_BEFORE)


def _wait_part_way(fleet, url: str, key: str) -> tuple[uuid.UUID, Ledger]:
    """The flow run once part way, and what its task bodies recorded by then."""
    wait_until(lambda: _part_way(url, key), ATTEMPT_WITHIN, "the map part way", fleet.log_tail)
    run_id = recorded_flow_run_id(url, key)
    assert run_id is not None
    return run_id, Ledger.read(url, key)


def _task_runs(run_id: uuid.UUID) -> list:
    from engine.store import get_store

    return get_store().read_task_runs(run_id)


def _wait_crashed(fleet, run_id: uuid.UUID, since: float, first_attempt: set) -> float:
    """Wait until the flow run's history shows Crashed and every task run of its first
    attempt (``first_attempt``, their ids) is final: the sweep ends them after the flow
    run. The seconds since ``since``."""

    def crashed_and_final() -> bool:
        if "Crashed" not in state_names(run_id):
            return False
        return all(r.state.is_final() for r in _task_runs(run_id) if r.id in first_attempt)

    wait_until(
        crashed_and_final,
        CRASHED_WITHIN + 10,  # fail later than the bound, to report the time taken
        f"flow run {run_id} Crashed with its task runs",
        lambda: _describe(run_id) + fleet.log_tail(),
    )
    return time.monotonic() - since


def _history(run_id: uuid.UUID) -> list:
    from engine.store import get_store

    return get_store().read_state_history(run_id)


def _describe(run_id: uuid.UUID) -> str:
    runs = [(r.name, r.state.name) for r in _task_runs(run_id)]
    return f"flow run: {state_names(run_id)}\ntask runs: {runs}\n"


def _retry_with_cli(fleet, run_id: uuid.UUID) -> subprocess.CompletedProcess:
    return subprocess.run(
        fleet.command("runs", "retry", str(run_id), "--timeout", str(ATTEMPT_WITHIN)),
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=ATTEMPT_WITHIN + 30,
        check=False,
    )


def _assert_resumed_once(
    url: str, key: str, run_id: uuid.UUID, before: Ledger, first_attempt: set
) -> None:
    """The flow run completed in a later attempt that reused the completed task runs, and
    no task run of the first attempt (``first_attempt``, ids) ran after the kill."""
    state = flow_run_state(run_id)
    assert state.is_completed(), state
    assert state.result() == expected_sum(N)
    history = state_names(run_id)
    crashed = history.index("Crashed")
    assert "AwaitingRetry" in history[crashed:], history
    assert history[-1] == "Completed" and history.count("Completed") == 1, history
    after = Ledger.read(url, key)
    account(run_id, after, item_names(N))
    # The tasks that had completed were not executed again
    done_before = [t for t in before.started if t[0][0] in DONE_BEFORE]
    done_after = [t for t in after.started if t[0][0] in DONE_BEFORE]
    assert sorted(done_after) == sorted(done_before)
    assert len(done_after) == len(DONE_BEFORE)
    # No task run of the first attempt started a body after the kill (they are Crashed)
    first_ids = {str(i) for i in first_attempt}
    assert sorted(t for t in after.started if t[0][1] in first_ids) == sorted(before.started)
    # The others (held, and the reduce) ran to the end once, in the new attempt
    rest = [t for t in after.finished if t[0][0] not in DONE_BEFORE]
    assert sorted(attempt[0] for attempt, _ in rest) == sorted([*map(str, HELD), "total"]), rest
    assert not {attempt[1] for attempt, _ in rest} & first_ids
    # Every task run of both attempts is final
    assert all(r.state.is_final() for r in _task_runs(run_id))


def test_a_killed_coordinator_s_flow_run_crashes_and_runs_retry_completes_it(
    chaos_fleet, redis_url, chaos_key
) -> None:
    with chaos_fleet(redis_url, lease=LEASE) as fleet:
        # Given a submitted flow run part way through its map on the workers
        _hold(redis_url, chaos_key)
        submit_flow_run(map_reduce, {"key": chaos_key, "n": N})
        run_id, before = _wait_part_way(fleet, redis_url, chaos_key)
        first_attempt = {r.id for r in _task_runs(run_id)}
        [flow_child] = recorded_flow_pids(redis_url, chaos_key)
        # When the coordinator's main process is SIGKILLed
        coordinator = fleet_process(fleet, "coordinator")
        coordinator.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        coordinator.wait()
        # Then its flow child dies with it
        wait_until(lambda: not alive(flow_child), CHILD_GONE_WITHIN, "the flow child gone")
        # And the flow run ends Crashed within the bound, its task runs final
        took = _wait_crashed(fleet, run_id, killed_at, first_attempt)
        print(f"\ncoordinator killed: flow run Crashed after {took:.1f}s (L={LEASE}s)")
        assert took <= CRASHED_WITHIN
        assert flow_run_state(run_id).name == "Crashed"
        _abandon_held(redis_url, chaos_key)
        # When a new coordinator starts and the run is retried from the CLI
        start_coordinator(fleet, "coordinator-2")
        started = time.monotonic()
        result = _retry_with_cli(fleet, run_id)
        # Then the attempt completes; completed tasks are reused, the rest ran once
        assert result.returncode == 0, (result.stdout, result.stderr, fleet.log_tail())
        assert "Completed" in result.stdout
        print(f"runs retry completed in {time.monotonic() - started:.1f}s")
        _assert_resumed_once(redis_url, chaos_key, run_id, before, first_attempt)
        assert_only_killed_exited(fleet, ["coordinator"])


def test_a_killed_flow_run_process_s_run_crashes_and_runs_retry_completes_it(
    chaos_fleet, redis_url, chaos_key, tmp_path
) -> None:
    with chaos_fleet(redis_url, lease=LEASE) as fleet:
        # Given `celerity flow run FILE:FUNC` part way through its map on the workers
        _hold(redis_url, chaos_key)
        target = f"{CHAOS_FLOWS_FILE}:map_reduce"
        output = tmp_path / "flow-run.out"
        with open(output, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "celerity", "flow", "run", target,
                 "--param", f"key={chaos_key}", "--param", f"n={N}"],
                env=fleet.env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
            )  # fmt: skip
        try:
            run_id, before = _wait_part_way(fleet, redis_url, chaos_key)
            first_attempt = {r.id for r in _task_runs(run_id)}
            assert recorded_flow_pids(redis_url, chaos_key) == [process.pid]
            # When that process is SIGKILLed
            process.kill()
            killed_at = time.monotonic()
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        # Then the flow run ends Crashed within the bound
        took = _wait_crashed(fleet, run_id, killed_at, first_attempt)
        print(f"\n`flow run` killed: flow run Crashed after {took:.1f}s (L={LEASE}s)")
        assert took <= CRASHED_WITHIN, output.read_text()
        assert flow_run_state(run_id).name == "Crashed"
        _abandon_held(redis_url, chaos_key)
        # When it is retried from the CLI (the coordinator runs the new attempt)
        started = time.monotonic()
        result = _retry_with_cli(fleet, run_id)
        # Then it completes; completed tasks are reused, the rest ran once
        assert result.returncode == 0, (result.stdout, result.stderr, fleet.log_tail())
        print(f"runs retry completed in {time.monotonic() - started:.1f}s")
        _assert_resumed_once(redis_url, chaos_key, run_id, before, first_attempt)
        assert_only_killed_exited(fleet, [])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_flow_with_retries_whose_flow_child_is_killed_retries_itself(
    chaos_fleet, redis_url, chaos_key, sig
) -> None:
    with chaos_fleet(redis_url, lease=LEASE) as fleet:
        # Given a submitted flow run with retries=1, part way through its map
        _hold(redis_url, chaos_key)
        submit_flow_run(map_reduce_retried, {"key": chaos_key, "n": N})
        run_id, before = _wait_part_way(fleet, redis_url, chaos_key)
        first_attempt = {r.id for r in _task_runs(run_id)}
        [flow_child] = recorded_flow_pids(redis_url, chaos_key)
        # When the coordinator's flow child running it is SIGKILLed (or SIGTERMed)
        os.kill(flow_child, sig)
        killed_at = time.monotonic()
        # Then the run ends Crashed within the bound: the coordinator sees its child
        # die, or (SIGTERM) the child's engine ends it Crashed with its task runs
        took = _wait_crashed(fleet, run_id, killed_at, first_attempt)
        assert took <= CRASHED_WITHIN
        if sig == signal.SIGTERM:
            crashed = next(s for s in _history(run_id) if s.name == "Crashed")
            assert "termination signal" in crashed.message, crashed.message
        _abandon_held(redis_url, chaos_key)
        # And it is retried automatically and completes, reusing the completed task runs
        completed_in = wait_until(
            lambda: "AwaitingRetry" in state_names(run_id) and flow_run_state(run_id).is_final(),
            ATTEMPT_WITHIN,
            f"flow run {run_id} final after its retry",
            fleet.log_tail,
        )
        print(
            f"\nflow child {sig.name}: Crashed after {took:.1f}s, "
            f"retried and completed {completed_in:.1f}s later (L={LEASE}s)"
        )
        _assert_resumed_once(redis_url, chaos_key, run_id, before, first_attempt)
        pids = recorded_flow_pids(redis_url, chaos_key)
        assert len(pids) == 2 and pids[0] == flow_child and pids[1] != flow_child
        assert_only_killed_exited(fleet, [])
