"""Celerity in two minutes: the examples on threads, then the ETL flow on a Celery fleet.

Part 1 runs ``hello`` and ``etl`` on the embedded default (thread runner,
in-memory store: no settings, no infrastructure) and prints each flow's final
state and result, and the state sequence of the flaky task run.

Part 2 starts a throwaway ``redis-server`` on a free port and two
``celerity worker start`` processes, runs ``etl`` in a subprocess with
``CELERITY_BROKER_URL`` set (so its task runs go to the workers as Celery
messages, signed with a random ``CELERITY_SIGNING_KEY`` made for the demo) and
prints which worker process ran each task run. Everything it started is
stopped before it exits. Exit code 0 means both parts worked.

    python examples/demo.py        # or: make demo
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

EXAMPLES = Path(__file__).resolve().parent
REPO_ROOT = EXAMPLES.parent
START_TIMEOUT_SECONDS = 30.0
FLOW_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 10.0
WORKERS = 2
DISTRIBUTED_RECORDS = 16
RESULT_MARKER = "CELERITY-DEMO-RESULT "

sys.path[:0] = [str(REPO_ROOT), str(EXAMPLES)]

console = Console(soft_wrap=True, highlight=False)


def state_names(run_id: Any) -> str:
    """A run's accepted states as ``Pending -> Running -> ...``."""
    from engine.store import get_store

    return " -> ".join(state.name for state in get_store().read_state_history(run_id))


def flaky_run(flow_run_id: Any) -> Any:
    """The task run of ``etl.flaky`` in a flow run."""
    from engine.store import get_store

    runs = get_store().read_task_runs(flow_run_id)
    return next(run for run in runs if run.task_key.endswith(".flaky"))


# --- part 1: embedded ----------------------------------------------------------------------


def run_embedded() -> None:
    import etl
    import hello

    console.rule("[bold]1. Embedded: threads and an in-memory store")
    for flow_obj, params in ((hello.hello, {}), (etl.etl, {"n": 8})):
        state = flow_obj(**params, return_state=True)
        console.print(f"[bold]{flow_obj.name}[/]: {state.name} -> {state.result()!r}")
    flaky = flaky_run(state.state_details.flow_run_id)
    console.print(f"[bold]etl.flaky[/] states: {state_names(flaky.id)}")


# --- part 2: distributed -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until(ready: Any, what: str, processes: list[subprocess.Popen[Any]]) -> None:
    """Poll ``ready()`` until it holds; fail early if one of ``processes`` died."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not ready():
        dead = [p.args for p in processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{what}: a process exited early: {dead[0]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {START_TIMEOUT_SECONDS:.0f}s")
        time.sleep(0.05)


def stop(processes: list[subprocess.Popen[Any]]) -> None:
    """SIGTERM everything, wait for a warm shutdown, SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fleet_env(broker_url: str) -> dict[str, str]:
    from engine.signing import generate_key

    paths = [str(REPO_ROOT), str(EXAMPLES), os.environ.get("PYTHONPATH", "")]
    # A fleet has no default key: the workers and the flow process share one
    # made for this demo (what `celerity key generate` prints).
    return {**os.environ, "CELERITY_BROKER_URL": broker_url, "PYTHONUNBUFFERED": "1",
            "CELERITY_SIGNING_KEY": generate_key(),
            "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@contextmanager
def local_fleet(redis_server: str, logdir: Path) -> Iterator[dict[str, str]]:
    """Redis on a free port and WORKERS solo workers; yields the environment to use them."""
    port = free_port()
    env = fleet_env(f"redis://127.0.0.1:{port}/0")
    processes: list[subprocess.Popen[Any]] = []
    try:
        processes.append(subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        wait_until(lambda: redis_answers(port), "redis-server", processes)
        logs = [logdir / f"worker-{i + 1}.log" for i in range(WORKERS)]
        for log in logs:
            # solo pool: the worker process runs task runs itself, so its pid is what we see.
            argv = [sys.executable, "-m", "celerity", "worker", "start",
                    "-c", "1", "--pool", "solo", "--loglevel", "INFO"]
            with open(log, "wb") as out:
                processes.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                                  stdout=out, stderr=subprocess.STDOUT))
        # Celery logs "<node> ready." once it consumes; wait for both so both get work.
        wait_until(lambda: all(" ready." in log.read_text(errors="replace") for log in logs),
                   "workers", processes)
        console.print(f"redis-server on port {port}, {WORKERS} workers: pids "
                      + ", ".join(str(p.pid) for p in processes[1:]))
        yield env
    finally:
        stop(processes[1:])  # workers first: they need Redis to shut down cleanly
        stop(processes[:1])


def run_distributed() -> int:
    console.rule("[bold]2. Distributed: a Celery fleet over Redis")
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        console.print("[red]redis-server is not installed.[/] Run [bold]make redis[/] "
                      "(installs it with apt-get), then run the demo again.")
        return 1
    with tempfile.TemporaryDirectory(prefix="celerity-demo-") as tmp:
        logdir = Path(tmp)
        try:
            with local_fleet(redis_server, logdir) as env:
                report = run_etl_subprocess(env, logdir / "flow.log")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            console.print(f"[red]Distributed part failed:[/] {exc}")
            show_logs(logdir)
            return 1
    return print_report(report)


def run_etl_subprocess(env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``etl`` in a fresh process whose settings name the fleet's Redis."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--run-etl"]
    with open(log, "wb") as err:
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=err,
                              timeout=FLOW_TIMEOUT_SECONDS, check=False)
    lines = [line for line in done.stdout.decode().splitlines() if line.startswith(RESULT_MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the flow process exited with code {done.returncode}")
    return json.loads(lines[-1][len(RESULT_MARKER):])


def print_report(report: dict[str, Any]) -> int:
    outcome = f"{report['state']} -> {report['result']}"
    console.print(f"[bold]etl[/] (n={DISTRIBUTED_RECORDS}): {outcome}")
    console.print(f"[bold]etl.flaky[/] states: {report['flaky_states']}")
    console.print(f"coordinator (the flow's own process): {report['coordinator']}")
    where_by_task: dict[str, Counter[str]] = {}
    for run in report["task_runs"]:
        where = run["worker"] or "the coordinator"
        if where == report["coordinator"]:
            where = "the coordinator"
        where_by_task.setdefault(run["task"], Counter())[where] += 1
    for task_name, places in where_by_task.items():
        spread = ", ".join(f"{where}" + (f" x{n}" if n > 1 else "") for where, n in places.items())
        console.print(f"  {task_name:<10} x{sum(places.values()):<3} ran on {spread}")
    workers = sorted({run["worker"] for run in report["task_runs"]
                      if run["worker"] and run["worker"] != report["coordinator"]})
    console.print(f"worker processes used: {len(workers)} ({', '.join(workers)})")
    return 0 if report["state"] == "Completed" and len(workers) >= 2 else 1


def show_logs(logdir: Path, lines: int = 15) -> None:
    for log in sorted(logdir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        console.print(f"[dim]--- {log.name}[/]")
        console.print("\n".join(tail), markup=False)


# --- the flow process of part 2 --------------------------------------------------------------


def etl_child() -> None:
    """Run ``etl`` with the Celery runner and print a JSON report (the last stdout line)."""
    import etl

    from engine.store import get_store
    from engine.task_engine import worker_identity

    state = etl.etl(n=DISTRIBUTED_RECORDS, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    store = get_store()
    runs = list(store.read_task_runs(flow_run_id))
    # The subflow's task runs belong to its own flow run.
    for parent in runs[:]:
        if parent.state and parent.state.state_details.child_flow_run_id:
            runs += store.read_task_runs(parent.state.state_details.child_flow_run_id)
    report = {
        "state": state.name,
        "result": state.result(raise_on_failure=False),
        "flaky_states": state_names(flaky_run(flow_run_id).id),
        "coordinator": worker_identity(),
        "task_runs": [{"task": r.task_key.rpartition(".")[2].removeprefix("subflow:"),
                       "worker": r.worker} for r in runs],
    }
    print(RESULT_MARKER + json.dumps(report, default=repr), flush=True)


def main() -> int:
    if "--run-etl" in sys.argv[1:]:
        etl_child()
        return 0
    # Part 1 is about the embedded default, whatever the calling shell exports
    # (nothing has read settings yet: engine modules are imported lazily).
    for name in [name for name in os.environ if name.startswith("CELERITY_")]:
        del os.environ[name]
    run_embedded()
    return run_distributed()


if __name__ == "__main__":
    sys.exit(main())
