"""redis-server killed and restarted under a running flow, with and without persistence.

With an append-only file fsynced on every write nothing acknowledged is lost:
every process reconnects (store commands retry for about 5 s), and the flow
completes with its result, each task completed once. Without persistence the
store forgets the flow run: the process running it ends within a few lease
periods with an error naming the lost run and exits, and the fleet (which
reconnects) serves the next flow.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from workers.producer import submit_flow_run, wait_for_flow_run

from .chaos import (
    Ledger,
    account,
    assert_only_killed_exited,
    item_names,
    recorded_flow_run_id,
    wait_until,
)
from .chaos_flows import expected_sum, map_reduce

pytestmark = pytest.mark.faults

CHAOS_FLOWS_FILE = Path(__file__).with_name("chaos_flows.py")
OUTAGE_SECONDS = 1.0  # how long Redis stays down: the shape of the fault
STARTED_WITHIN = 60.0


def _flow_run_cli(fleet, key: str, n: int, work_seconds: float, output: Path) -> subprocess.Popen:
    """``celerity flow run chaos_flows.py:map_reduce`` in the background, output to a file."""
    with open(output, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celerity", "flow", "run", f"{CHAOS_FLOWS_FILE}:map_reduce",
             "--param", f"key={key}", "--param", f"n={n}",
             "--param", f"work_seconds={work_seconds}"],
            env=fleet.env, stdout=out, stderr=subprocess.STDOUT, cwd=output.parent,
        )  # fmt: skip


def _restart_when_part_way(server, fleet, url: str, key: str, n: int, process) -> float:
    """SIGKILL redis-server once a quarter of the map finished, restart it after the
    outage on the same port; the monotonic time it answers again."""
    wait_until(
        lambda: len(Ledger.read(url, key).finished_items()) >= n // 4 or process.poll() is not None,
        STARTED_WITHIN,
        "a quarter of the map finished",
        fleet.log_tail,
    )
    assert process.poll() is None, "the flow ended before Redis was restarted"
    server.kill()
    time.sleep(OUTAGE_SECONDS)  # the outage itself, not a synchronisation
    server.start()
    return time.monotonic()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


class TestWithAppendOnlyFile:
    N = 200
    WORK_SECONDS = 0.03
    LEASE = 3.0  # longer than the outage, so that no lease lapses while Redis is down
    COMPLETES_WITHIN = 60.0  # after Redis is back: reconnects (5 s retries) plus the rest

    def test_the_flow_completes_with_its_result(
        self, chaos_fleet, aof_redis, chaos_key, tmp_path
    ) -> None:
        url = aof_redis.url
        with chaos_fleet(url, lease=self.LEASE) as fleet:
            # Given a flow run part way through a map on the fleet
            output = tmp_path / "flow-run.out"
            process = _flow_run_cli(fleet, chaos_key, self.N, self.WORK_SECONDS, output)
            try:
                # When redis-server (AOF, fsync always) is killed and restarted
                back = _restart_when_part_way(aof_redis, fleet, url, chaos_key, self.N, process)
                # Then the flow run process completes with the right result
                took = wait_until(
                    lambda: process.poll() is not None,
                    self.COMPLETES_WITHIN,
                    "the flow run process exited",
                    lambda: output.read_text() + fleet.log_tail(),
                )
            finally:
                _stop(process)
            text = output.read_text()
            print(f"\nAOF restart: the flow completed {time.monotonic() - back:.1f}s after "
                  f"Redis was back (exited after {took:.1f}s)")  # fmt: skip
            assert process.returncode == 0, (text, fleet.log_tail())
            assert "Completed" in text
            assert f"Result: {expected_sum(self.N)}" in text
            # And every run is final, each task completed once, no attempt ran twice
            ledger = Ledger.read(url, chaos_key)
            run_id = recorded_flow_run_id(url, chaos_key)
            outcome = account(run_id, ledger, item_names(self.N))
            assert outcome.lost_after_finishing == []
            # And every worker and the coordinator reconnected and live on
            assert_only_killed_exited(fleet, [])


class TestWithoutPersistence:
    N = 200
    WORK_SECONDS = 0.03
    LEASE = 1.0
    # The reaper gives up on a flow run whose record is gone at its next pass, and
    # on a store unreachable for 4 L; the process then exits. 5 L plus start-up slack.
    ENDS_WITHIN = 5 * LEASE + 10.0

    def test_the_flow_process_ends_with_a_clear_error_and_the_fleet_serves_on(
        self, chaos_fleet, own_redis, chaos_key, tmp_path
    ) -> None:
        url = own_redis.url
        with chaos_fleet(url, lease=self.LEASE) as fleet:
            # Given a flow run part way through a map on the fleet
            output = tmp_path / "flow-run.out"
            process = _flow_run_cli(fleet, chaos_key, self.N, self.WORK_SECONDS, output)
            try:
                wait_until(
                    lambda: recorded_flow_run_id(url, chaos_key), STARTED_WITHIN, "flow started"
                )
                run_id = recorded_flow_run_id(url, chaos_key)
                # When redis-server (no persistence) is killed and restarted empty
                _restart_when_part_way(own_redis, fleet, url, chaos_key, self.N, process)
                # Then the flow run process ends within the bound
                took = wait_until(
                    lambda: process.poll() is not None,
                    self.ENDS_WITHIN,
                    "the flow run process exited",
                    lambda: output.read_text() + fleet.log_tail(),
                )
            finally:
                _stop(process)
            text = output.read_text()
            print(f"\nrestart without persistence: the flow process exited {took:.1f}s after "
                  f"Redis was back (code {process.returncode})")  # fmt: skip
            # With an error that names the lost flow run, and a failing exit code
            assert process.returncode == 1, (text, fleet.log_tail())
            assert str(run_id) in text and "no longer in the run store" in text, text
            # and no crash dump: the only traceback is the one the flow run's Failed
            # line logs, which shows the user's frames, none of the CLI's or engine's
            frames = [line for line in text.splitlines() if line.lstrip().startswith('File "')]
            assert all("/tests/faults/" in frame for frame in frames), text
            # And every worker and the coordinator are alive and serve a new flow
            assert_only_killed_exited(fleet, [])
            again = f"{chaos_key}-again"
            new_run = submit_flow_run(map_reduce, {"key": again, "n": 5})
            state = wait_for_flow_run(new_run, timeout=60)
            assert state.is_completed(), (state, fleet.log_tail())
            assert state.result() == expected_sum(5)
            account(new_run, Ledger.read(url, again), item_names(5))
            assert_only_killed_exited(fleet, [])
