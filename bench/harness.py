"""Processes and measurements: a throwaway Redis, one fleet at a time, fresh client processes.

Every child runs in its own session, so one ``killpg`` stops a worker and its
prefork pool. ``Processes.stop_all`` is called from ``finally``, from
``atexit`` and (via KeyboardInterrupt) on SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from engine.signing import generate_key

REPO_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 60.0
CLIENT_TIMEOUT_SECONDS = 300.0
WARM_UP_TASKS = 8
CELERITY_DB, RAW_DB = 0, 1

# Which client scenarios each system runs, in order; raw "chord" is handled apart.
CELERITY_SCENARIOS = ("fan_out", "chain", "map_reduce")
RAW_SCENARIOS = ("fan_out", "chain", "group_reduce")


class BenchError(RuntimeError):
    """A process of the benchmark could not start or failed."""


@dataclass
class Processes:
    """Child processes, each leading its own session, stopped on demand or at exit."""

    log: IO[Any]
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the repo root; its output goes to the bench log."""
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.children.append((name, process))
        return process

    def stop(self, processes: list[subprocess.Popen[bytes]]) -> None:
        """SIGTERM, wait up to STOP_TIMEOUT_SECONDS, then SIGKILL each session."""
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)
            process.wait()
        self.children = [(n, p) for n, p in self.children if p not in processes]

    def stop_all(self) -> None:
        """Stop every child, the most recently started first."""
        self.stop([process for _, process in reversed(self.children)])


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to the session ``process`` leads (it and its pool children)."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks run."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(procs: Processes) -> int:
    """Start an in-memory redis-server on a free port; return the port once it answers."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise BenchError("redis-server is not on PATH (try `make redis`).")
    port = free_port()
    argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--loglevel", "warning"]
    process = procs.start("redis", argv, dict(os.environ))
    client = redis.Redis(port=port, socket_timeout=1.0)
    deadline = time.monotonic() + 10.0
    while True:
        try:
            client.ping()
            return port
        except redis.RedisError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)
        finally:
            client.close()


def child_env(port: int, events: bool = False) -> dict[str, str]:
    """Environment for workers and clients: both URLs, the repo on PYTHONPATH, no outer config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERITY_")}
    env.update(
        CELERITY_BROKER_URL=f"redis://127.0.0.1:{port}/{CELERITY_DB}",
        CELERITY_SIGNING_KEY=generate_key(),  # a throwaway fleet: a throwaway key
        BENCH_RAW_URL=f"redis://127.0.0.1:{port}/{RAW_DB}",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p),
        PYTHONUNBUFFERED="1",
    )
    if events:  # both systems' workers then send task events and heartbeats
        env["CELERITY_WORKER_EVENTS"] = "true"
    return env


@dataclass
class Bench:
    """One benchmark session: its processes, environment, scratch directory and options."""

    procs: Processes
    env: dict[str, str]
    scratch: Path
    log_path: Path
    say: Callable[[str], None] = print

    def start_fleet(self, system: str, workers: int, concurrency: int) -> list[Any]:
        """Start ``workers`` workers of ``system``; return them once ready and warmed up."""
        fleet, ready_files = [], []
        for index in range(workers):
            ready = self.scratch / f"{system}-{index}.ready"
            ready.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "bench.worker", system, "-c", str(concurrency),
                    "--ready", str(ready)]
            fleet.append(self.procs.start(f"{system}-worker-{index}", argv, self.env))
            ready_files.append(ready)
        self._wait_ready(fleet, ready_files)
        warm = self.run_client(system, "warm_up", WARM_UP_TASKS)
        if warm["status"] != "ok":
            raise BenchError(f"{system} warm-up failed: {warm}; see {self.log_path}")
        return fleet

    def _wait_ready(self, fleet: list[Any], ready_files: list[Path]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(path.exists() for path in ready_files):
            if any(process.poll() is not None for process in fleet):
                raise BenchError(f"a worker exited while starting; see {self.log_path}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"workers not ready in {READY_TIMEOUT_SECONDS}s; see {self.log_path}")
            time.sleep(0.1)

    def run_client(
        self, system: str, scenario: str, n: int, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Run a scenario in a fresh client process; its JSON outcome ('error' if it failed)."""
        out = self.scratch / f"{system}-{scenario}.json"
        out.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "bench.client", system, scenario, "--n", str(n),
                "--timeout", str(timeout), "--out", str(out)]
        process = self.procs.start(f"{system}-client", argv, self.env)
        try:
            process.wait(timeout=CLIENT_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.procs.stop([process])
            return {"status": "error", "reason": f"client exceeded {CLIENT_TIMEOUT_SECONDS}s"}
        self.procs.stop([process])
        if process.returncode != 0 or not out.exists():
            return {"status": "error", "reason": f"client exit code {process.returncode}"}
        return json.loads(out.read_text())

    def purge_raw_queue(self) -> None:
        """Drop raw Celery messages still waiting (after a chord that timed out)."""
        from bench.raw_app import make_app

        app = make_app(self.env["BENCH_RAW_URL"])
        try:
            app.control.purge()
        finally:
            app.close()


@dataclass
class Options:
    """The command-line options of ``python -m bench``."""

    runs: int
    n: int
    chain: int
    workers: int
    concurrency: int
    chord_timeout: float
    events: bool = False


def _measure(bench: Bench, system: str, plan: list[tuple[str, int]], runs: int) -> dict[str, list]:
    """Run every (scenario, size) of ``plan`` ``runs`` times, interleaved; outcomes per scenario."""
    outcomes: dict[str, list] = {scenario: [] for scenario, _ in plan}
    for run in range(runs):
        for scenario, n in plan:
            outcome = bench.run_client(system, scenario, n)
            outcomes[scenario].append(outcome)
            bench.say(f"  {system:8} {scenario:12} run {run + 1}/{runs}: "
                      f"{outcome['status']} {outcome.get('elapsed', 0):.2f}s")
    return outcomes


def _measure_chord(bench: Bench, opts: Options) -> list[dict[str, Any]]:
    """Raw chord runs; after a timeout the rest are skipped (each would cost the timeout)."""
    outcomes = []
    for run in range(opts.runs):
        outcome = bench.run_client("raw", "chord", opts.n, timeout=opts.chord_timeout)
        outcomes.append(outcome)
        bench.say(f"  raw      chord        run {run + 1}/{opts.runs}: "
                  f"{outcome['status']} {outcome.get('elapsed', 0):.2f}s")
        if outcome["status"] != "ok":
            bench.purge_raw_queue()
            break
    return outcomes


def run_system(bench: Bench, system: str, opts: Options) -> dict[str, list]:
    """Start ``system``'s fleet, measure its scenarios, stop the fleet."""
    names = CELERITY_SCENARIOS if system == "celerity" else RAW_SCENARIOS
    plan = [(name, opts.chain if name == "chain" else opts.n) for name in names]
    bench.say(f"Starting {opts.workers} {system} workers (-c {opts.concurrency} prefork)...")
    fleet = bench.start_fleet(system, opts.workers, opts.concurrency)
    try:
        outcomes = _measure(bench, system, plan, opts.runs)
        if system == "raw":
            outcomes["chord"] = _measure_chord(bench, opts)
        return outcomes
    finally:
        bench.procs.stop(fleet)


def run_all(opts: Options, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole benchmark: Redis, Celerity's fleet and runs, then raw Celery's; all outcomes."""
    scratch = Path(tempfile.mkdtemp(prefix="celerity-bench-"))
    log_path = scratch / "bench.log"
    with open(log_path, "ab") as log, interrupt_on_sigterm():
        procs = Processes(log)
        atexit.register(procs.stop_all)
        try:
            port = start_redis(procs)
            bench = Bench(procs, child_env(port, opts.events), scratch, log_path, say)
            say(f"Redis on port {port}; logs in {log_path}")
            results = {system: run_system(bench, system, opts) for system in ("celerity", "raw")}
        finally:
            procs.stop_all()
            atexit.unregister(procs.stop_all)
    if _all_ok(results):
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        say(f"Some runs failed; logs kept in {log_path}")
    return results


def _all_ok(results: dict[str, Any]) -> bool:
    """True when no run ended in 'error' (then the scratch logs are not worth keeping)."""
    return all(outcome["status"] != "error" for per_system in results.values()
               for outcomes in per_system.values() for outcome in outcomes)
