"""The runs CLI on a real fleet: progress while waiting, watch, lookups by prefix and name,
flow names, resuming a plain-type pause, workers ls and queues ls."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .fleet import Fleet, fleet_environment, session_fleet, use_broker

WAIT_SECONDS = 60

FLOWS = '''\
import time

from engine import flow, pause_flow_run, task


@task
def slow_square(x: int) -> int:
    time.sleep(0.4)
    return x * x


@flow
def nightly_prices(n: int = 3) -> int:
    return sum(f.result() for f in slow_square.map(range(n)))


@flow
def go_no_go() -> str:
    go = pause_flow_run(wait_for_input=bool, timeout=60)
    return "go" if go else "no go"
'''


@pytest.fixture(scope="module")
def cli_flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-flows") / "cli_fleet_flows.py"
    path.write_text(FLOWS)
    return path


@pytest.fixture(scope="module")
def inspected_fleet(
    redis_server, cli_flows: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """One worker and a coordinator that answer Celery's inspect, on the flushed session Redis."""
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    with session_fleet(redis_server, tmp_path_factory, "cli-fleet", workers=1,
                       pythonpath=[cli_flows.parent],
                       env={"CELERITY_REMOTE_CONTROL": "true"}) as fleet:
        yield fleet


def celerity(env: dict[str, str], *args: str, timeout: float = WAIT_SECONDS + 30
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celerity", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def ok(result: subprocess.CompletedProcess[str], fleet: Fleet | None = None) -> str:
    log = fleet.log_tail() if fleet is not None else ""
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{log}")
    return result.stdout


def submit(fleet: Fleet, target: str, *args: str) -> uuid.UUID:
    out = ok(celerity(fleet.env, "flow", "submit", target, *args), fleet)
    return uuid.UUID(out.splitlines()[0].strip())


def wait_for_state(fleet: Fleet, run_id: uuid.UUID, state: str) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        shown = json.loads(ok(celerity(fleet.env, "runs", "show", str(run_id), "--json"), fleet))
        if shown["state"] == state:
            return shown
        assert time.monotonic() < deadline, f"still {shown['state']}\n{fleet.log_tail()}"
        time.sleep(0.2)  # the coordinator is another process: poll what it records


def test_submit_wait_shows_progress_and_names_the_flow_as_flow_run_does(
    inspected_fleet: Fleet, cli_flows: Path
) -> None:
    # When a flow is submitted with --wait, then run here with `flow run`
    waited = celerity(inspected_fleet.env, "flow", "submit", f"{cli_flows}:nightly_prices",
                      "--param", "n=4", "--wait", "--timeout", str(WAIT_SECONDS))
    out = ok(waited, inspected_fleet)
    ran = celerity(inspected_fleet.env, "flow", "run", f"{cli_flows}:nightly_prices")
    ok(ran, inspected_fleet)

    # Then --wait showed the task runs' progress and the outcome, with no warning
    assert "4/4 task runs final" in out and "Completed 4" in out
    assert "Result: 14" in out
    assert "no coordinator" not in waited.stderr
    # And both runs are listed under the flow's own name
    listed = json.loads(ok(celerity(inspected_fleet.env, "runs", "ls", "--json",
                                    "--flow", "nightly-prices")))
    assert len(listed) == 2 and {r["flow_name"] for r in listed} == {"nightly-prices"}


def test_watch_follows_a_running_flow_found_by_prefix(
    inspected_fleet: Fleet, cli_flows: Path
) -> None:
    run_id = submit(inspected_fleet, f"{cli_flows}:nightly_prices", "--param", "n=6")

    watched = celerity(inspected_fleet.env, "runs", "watch", str(run_id)[:8])

    out = ok(watched, inspected_fleet)
    assert f"({run_id}) of nightly-prices" in out
    assert "6/6 task runs final" in out and "Flow run finished: Completed" in out
    shown = json.loads(ok(celerity(inspected_fleet.env, "runs", "show", str(run_id)[:13],
                                   "--json")))
    assert len(shown["task_runs"]) == 6
    assert all(t["worker"] and t["duration_seconds"] >= 0.4 for t in shown["task_runs"])


def test_a_bool_pause_resumes_with_a_bare_value(
    inspected_fleet: Fleet, cli_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a submitted run paused with wait_for_input=bool
    run_id = submit(inspected_fleet, f"{cli_flows}:go_no_go")
    paused = wait_for_state(inspected_fleet, run_id, "Paused")
    assert paused["input_schema"]["properties"]["value"]["type"] == "boolean"

    # When a person resumes it by name with `--input true`
    ok(celerity(inspected_fleet.env, "runs", "resume", paused["name"], "--input", "true"),
       inspected_fleet)

    # Then the flow received True
    from workers.producer import wait_for_flow_run

    use_broker(monkeypatch, inspected_fleet.env["CELERITY_BROKER_URL"])
    final = wait_for_flow_run(run_id, timeout=WAIT_SECONDS)
    assert final.is_completed(), inspected_fleet.log_tail()
    assert final.result() == "go"


def test_workers_ls_lists_the_worker_and_the_coordinator(inspected_fleet: Fleet) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        listed = json.loads(ok(celerity(inspected_fleet.env, "workers", "ls", "--json")))
        if len(listed) == 2:
            break
        assert time.monotonic() < deadline, f"{listed}\n{inspected_fleet.log_tail()}"

    assert sorted(w["kind"] for w in listed) == ["coordinator", "worker"]
    assert all(w["status"] == "online" and w["active"] is not None for w in listed), listed
    table = ok(celerity(inspected_fleet.env, "workers", "ls"))
    assert all(w["name"] in table for w in listed)


def test_without_a_coordinator_submit_wait_warns_once_and_the_run_waits_in_its_queue(
    own_redis, cli_flows: Path
) -> None:
    env = fleet_environment(own_redis.url)  # a Redis no fleet consumes

    # When a flow run is submitted and waited for with no coordinator running
    waited = celerity(env, "flow", "submit", f"{cli_flows}:nightly_prices", "--wait",
                      "--timeout", "8")

    # Then the wait says, once, that nobody took it, and times out
    assert waited.returncode == 1
    assert waited.stderr.count("no coordinator has taken it") == 1, waited.stderr
    # And its job is waiting in the flow queue; the worker list is empty, saying why
    depths = json.loads(ok(celerity(env, "queues", "ls", "--json")))
    assert {"name": "flows", "waiting": 1, "reserved": 0} in depths
    assert {"name": "celerity", "waiting": 0, "reserved": 0} in depths
    nobody = celerity(env, "workers", "ls")
    assert nobody.returncode == 0 and "CELERITY_REMOTE_CONTROL=true" in nobody.stderr


def test_wait_for_flow_run_logs_once_that_no_coordinator_took_the_run(
    own_redis, cli_flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from workers.producer import NO_COORDINATOR_SECONDS, submit_flow_run, wait_for_flow_run

    use_broker(monkeypatch, own_redis.url)  # a Redis no coordinator consumes
    run_id = submit_flow_run(f"{cli_flows}:nightly_prices")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("celerity.producer").addHandler(handler)
    try:
        with pytest.raises(TimeoutError):
            wait_for_flow_run(run_id, timeout=NO_COORDINATOR_SECONDS + 2)
    finally:
        logging.getLogger("celerity.producer").removeHandler(handler)

    assert [r.levelno for r in records] == [logging.WARNING]
    assert f"Flow run {run_id} is still Scheduled" in records[0].getMessage()


def test_dev_prints_its_export_lines_after_the_celery_banners(
    tmp_path: Path, cli_flows: Path
) -> None:
    import signal

    log = tmp_path / "dev.log"
    env = fleet_environment("unused")
    del env["CELERITY_BROKER_URL"], env["CELERITY_SIGNING_KEY"]
    with open(log, "wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "celerity", "dev", "-w", "1"], env=env,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while "export CELERITY_SIGNING_KEY=" not in log.read_text(errors="replace"):
            assert dev.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)  # dev is another process: poll its output
        before, _, _ = log.read_text(errors="replace").partition("export CELERITY_BROKER_URL=")
        # Both banners (the worker's and the coordinator's) came before the export lines
        assert before.count("[config]") == 2, before
        assert before.count(" ready.") == 2, before
    finally:
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=30) == 0, log.read_text()


def test_a_flow_added_to_a_loaded_file_fails_with_a_restart_hint(
    inspected_fleet: Fleet, cli_flows: Path
) -> None:
    # Given a flow file the coordinator has loaded once
    path = cli_flows.parent / "edited_flows.py"
    path.write_text("from engine import flow\n\n\n@flow\ndef first():\n    return 1\n")
    ok(celerity(inspected_fleet.env, "flow", "submit", f"{path}:first", "--wait",
                "--timeout", str(WAIT_SECONDS)), inspected_fleet)

    # When a flow added to it since is submitted
    path.write_text(path.read_text() + "\n\n@flow\ndef second():\n    return 2\n")
    waited = celerity(inspected_fleet.env, "flow", "submit", f"{path}:second", "--wait",
                      "--timeout", str(WAIT_SECONDS))

    # Then the run fails saying why, and the CLI says to restart the coordinators
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert "Could not load the flow" in waited.stdout
    assert "restart them" in waited.stderr
    run_id = waited.stdout.splitlines()[0].strip()
    shown = ok(celerity(inspected_fleet.env, "runs", "show", run_id), inspected_fleet)
    assert "restart them" in shown


def test_workers_ls_hears_heartbeats_of_workers_without_remote_control(
    own_redis, tmp_path: Path
) -> None:
    from .fleet import running_fleet

    events = {"CELERITY_WORKER_EVENTS": "true"}  # heartbeats, but no inspect
    with running_fleet(own_redis.url, tmp_path / "fleet.log", workers=1, concurrency=1,
                       env=events) as fleet:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            listed = json.loads(ok(celerity(fleet.env, "workers", "ls", "--json"), fleet))
            if len(listed) == 2:
                break
            assert time.monotonic() < deadline, f"{listed}\n{fleet.log_tail()}"

    assert sorted(w["kind"] for w in listed) == ["coordinator", "worker"]
    assert all(w["status"] == "heartbeat" and w["active"] == 0 for w in listed), listed
