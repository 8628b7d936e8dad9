"""Whole workers SIGKILLed and replaced every few seconds under a 1,000-task map + reduce.

A whole worker (the ``celerity worker`` process and its pool children at once,
as a lost machine) takes with it the messages it had reserved and the runs it
was executing. The reaper resends the runs of lost messages, and takes over
the runs that were Running, within a few lease periods of the loss; the
compare-and-set keeps each attempt to one execution.
"""

from __future__ import annotations

import time

import pytest

from workers.producer import submit_flow_run

from .chaos import (
    Ledger,
    account,
    assert_only_killed_exited,
    flow_run_state,
    item_names,
    kill_whole,
    start_worker,
    wait_until,
)
from .chaos_flows import expected_sum, map_reduce

pytestmark = pytest.mark.faults

N = 1000
WORK_SECONDS = 0.08  # per task body: the map takes longer than the kills last
LEASE = 2.0  # L; short, yet long enough for the keeper threads on two busy cores
KILL_EVERY = 3.0
KILL_FOR = 20.0
# After the last kill the flow completes within this: the reaper resends or takes
# over what the last killed worker held within about 3 L, plus the remaining work
# (a few seconds) and slack for two busy cores.
COMPLETES_AFTER_LAST_KILL = 10 * LEASE


def _living_workers(fleet) -> list:
    return [
        (name, process)
        for name, process in fleet.group.processes
        if name.startswith("worker") and process.poll() is None
    ]


def test_a_map_reduce_completes_while_whole_workers_are_killed_and_replaced(
    chaos_fleet, redis_url, chaos_key
) -> None:
    with chaos_fleet(redis_url, lease=LEASE, workers=2, concurrency=2) as fleet:
        # Given a 1,000-task map + reduce running on two workers
        run_id = submit_flow_run(
            map_reduce, {"key": chaos_key, "n": N, "work_seconds": WORK_SECONDS}
        )
        wait_until(
            lambda: Ledger.read(redis_url, chaos_key).items("started"),
            60,
            "the map started",
            fleet.log_tail,
        )
        # When every few seconds one whole worker is SIGKILLed and a new one started
        killed: list[str] = []
        started_at = time.monotonic()
        last_kill = started_at
        while time.monotonic() - started_at < KILL_FOR:
            next_kill = last_kill + KILL_EVERY
            while time.monotonic() < next_kill and not flow_run_state(run_id).is_final():
                time.sleep(0.1)  # the kill schedule, not a synchronisation
            if flow_run_state(run_id).is_final():
                break
            name, victim = _living_workers(fleet)[0]  # the oldest
            kill_whole(victim)
            killed.append(name)
            last_kill = time.monotonic()
            start_worker(fleet, f"worker-replacement-{len(killed)}")
        finished_during_kills = len(Ledger.read(redis_url, chaos_key).finished_items())

        # Then the flow run completes with the right sum within the bound
        recovery = wait_until(
            lambda: flow_run_state(run_id).is_final(),
            COMPLETES_AFTER_LAST_KILL,
            f"flow run {run_id} final after the last kill",
            fleet.log_tail,
        )
        state = flow_run_state(run_id)
        assert state.is_completed(), (state, fleet.log_tail())
        assert state.result() == expected_sum(N)
        # And every task run is final, each task completed once, no attempt ran twice
        ledger = Ledger.read(redis_url, chaos_key)
        outcome = account(run_id, ledger, item_names(N))
        print(
            f"\n{len(killed)} workers killed over {last_kill - started_at:.1f}s; "
            f"{finished_during_kills}/{N + 1} bodies had finished by then; "
            f"completed {recovery:.1f}s after the last kill (L={LEASE}s); "
            f"{len(outcome.task_runs)} task runs; "
            f"{len(outcome.lost_after_finishing)} bodies finished in an attempt lost to a kill"
        )
        assert len(killed) >= KILL_FOR // KILL_EVERY - 1, "the flow ended before the kills"
        # And no worker died but those killed (the replacements all serve)
        assert_only_killed_exited(fleet, killed)
