"""End to end: a producer submits a flow run; a coordinator and two workers run it."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

from engine.store.redis import RedisRunStore

from .fleet import Fleet, use_broker

# Generous: the first submission also waits for the workers to start consuming.
WAIT_SECONDS = 60
WORKER = re.compile(r"\S+:\d+")


def celerity(
    fleet: Fleet, *args: str, timeout: float = WAIT_SECONDS + 30
) -> subprocess.CompletedProcess[str]:
    """Run ``celerity ARGS`` as a separate process with the fleet's environment."""
    return subprocess.run(fleet.command(*args), env=fleet.env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def explain(result: subprocess.CompletedProcess[str], fleet: Fleet) -> str:
    return (f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
            f"fleet log:\n{fleet.log_tail()}")


def submit_and_wait(fleet: Fleet, flows_dir: Path, *params: str) -> tuple[uuid.UUID, str]:
    """Submit ``pipeline`` with --wait; return the run id and the output."""
    result = celerity(fleet, "flow", "submit", f"{flows_dir / 'dist_flows.py'}:pipeline",
                      *params, "--wait", "--timeout", str(WAIT_SECONDS))
    assert result.returncode == 0, explain(result, fleet)
    return uuid.UUID(result.stdout.splitlines()[0].strip()), result.stdout


def test_submitted_flow_runs_on_the_fleet(fleet: Fleet, flows_dir: Path) -> None:
    run_id, output = submit_and_wait(fleet, flows_dir, "--param", "x=3")

    assert "Flow run finished: Completed" in output
    assert "Result: 25" in output  # 3*3 + 4*4

    shown = celerity(fleet, "runs", "show", str(run_id))
    assert shown.returncode == 0, explain(shown, fleet)
    assert str(run_id) in shown.stdout
    task_lines = [line for line in shown.stdout.splitlines() if "square" in line or "add" in line]
    assert len(task_lines) == 3, shown.stdout
    assert all("Completed" in line and WORKER.search(line) for line in task_lines), shown.stdout


def test_task_runs_record_the_worker_that_ran_them(fleet: Fleet, flows_dir: Path) -> None:
    run_id, _ = submit_and_wait(fleet, flows_dir, "--params", '{"x": 1}')

    store = RedisRunStore(fleet.env["CELERITY_BROKER_URL"])
    try:
        task_runs = store.read_task_runs(run_id)
        assert store.read_flow_run(run_id).state.is_completed()
    finally:
        store.close()
    assert len(task_runs) == 3
    assert all(run.state.is_completed() and run.run_count == 1 for run in task_runs)
    assert all(run.worker and WORKER.fullmatch(run.worker) for run in task_runs), task_runs


def test_runs_ls_and_logs(fleet: Fleet, flows_dir: Path) -> None:
    run_id, _ = submit_and_wait(fleet, flows_dir, "--param", "x=2")

    listed = celerity(fleet, "runs", "ls", "--limit", "50")
    assert listed.returncode == 0, explain(listed, fleet)
    row = next((line for line in listed.stdout.splitlines() if str(run_id) in line), None)
    assert row is not None, listed.stdout
    assert "pipeline" in row and "Completed" in row

    logs = celerity(fleet, "runs", "logs", str(run_id))
    assert logs.returncode == 0, explain(logs, fleet)
    assert "pipeline total is 13" in logs.stdout


def test_logs_follow_stops_when_the_run_is_final(fleet: Fleet, flows_dir: Path) -> None:
    submitted = celerity(fleet, "flow", "submit", f"{flows_dir / 'dist_flows.py'}:pipeline",
                         "--param", "x=5")
    assert submitted.returncode == 0, explain(submitted, fleet)
    run_id = submitted.stdout.strip()

    followed = celerity(fleet, "runs", "logs", run_id, "--follow")
    assert followed.returncode == 0, explain(followed, fleet)
    assert "pipeline total is 61" in followed.stdout


def test_failing_submission_exits_nonzero(fleet: Fleet, tmp_path: Path) -> None:
    missing = celerity(fleet, "flow", "submit", f"{tmp_path / 'nope.py'}:pipeline", "--wait")
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


def test_a_paused_submitted_run_is_resumed_from_the_cli(
    fleet: Fleet, flows_dir: Path, monkeypatch
) -> None:
    import time

    from engine.states import StateType

    use_broker(monkeypatch, fleet.env["CELERITY_BROKER_URL"])

    # Given a submitted flow run that pauses for a decision
    submitted = celerity(fleet, "flow", "submit", f"{flows_dir / 'dist_flows.py'}:approval_gate",
                         "--param", "amount=12")
    assert submitted.returncode == 0, explain(submitted, fleet)
    run_id = uuid.UUID(submitted.stdout.splitlines()[0].strip())
    store = RedisRunStore(fleet.env["CELERITY_BROKER_URL"])
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while store.read_flow_run(run_id).state.type != StateType.PAUSED:
            assert time.monotonic() < deadline, fleet.log_tail()
            time.sleep(0.1)  # the coordinator is another process: poll the store
        # When a person resumes it from the CLI with the input
        resumed = celerity(fleet, "runs", "resume", str(run_id), "--input", '{"approved": true}')
        assert resumed.returncode == 0, explain(resumed, fleet)
        # Then the flow run completes with the decision it received
        from workers.producer import wait_for_flow_run

        final = wait_for_flow_run(run_id, timeout=WAIT_SECONDS)
        assert final.is_completed(), fleet.log_tail()
        assert final.result() == "12 approved"
    finally:
        store.close()


def test_piped_tables_do_not_fold_cells(fleet: Fleet, flows_dir: Path) -> None:
    # Given a finished flow run, and a CLI whose output goes to a pipe with no COLUMNS
    run_id, _ = submit_and_wait(fleet, flows_dir, "--param", "x=2")
    env = {k: v for k, v in fleet.env.items() if k != "COLUMNS"}

    # When its runs are listed and shown
    for args in (("runs", "ls"), ("runs", "show", str(run_id))):
        result = subprocess.run(fleet.command(*args), env=env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, explain(result, fleet)
        # Then each run is one line that a script can grep, its state whole
        marker = "square" if args[1] == "show" else str(run_id)
        lines = [line for line in result.stdout.splitlines() if marker in line]
        assert len(lines) == (2 if args[1] == "show" else 1), result.stdout
        assert all("Completed" in line for line in lines), result.stdout
