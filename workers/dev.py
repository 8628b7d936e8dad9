"""Process management for ``celerity dev`` and for tests: a local fleet in one process group.

``celerity dev`` starts a throwaway ``redis-server``, N task-run workers and one
coordinator, which share a random signing key made for the session (or the
``CELERITY_SIGNING_KEY`` already exported). The children share one process
group (led by the first process started), separate from the terminal's: Ctrl-C
reaches only ``celerity dev``, which then stops the children in order (workers
and coordinator first, Redis last) and finally kills whatever is left in the
group (prefork pool children, flow run processes).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

STOP_TIMEOUT_SECONDS = 10.0
REDIS_START_TIMEOUT_SECONDS = 10.0
CONSUMING_TIMEOUT_SECONDS = 30.0
SIGNING_KEY_ENV = "CELERITY_SIGNING_KEY"


class DevError(RuntimeError):
    """The local fleet could not start or one of its processes died."""


def celerity_command(*args: str) -> list[str]:
    """The argv that runs ``celerity ARGS`` with this interpreter."""
    return [sys.executable, "-m", "celerity", *args]


@dataclass
class ProcessGroup:
    """Child processes in one process group that are stopped together."""

    processes: list[tuple[str, subprocess.Popen[Any]]] = field(default_factory=list)
    pgid: int | None = None

    def start(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        output: IO[Any] | int | None = None,
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` in the group; ``output`` receives its stdout and stderr."""
        process = subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            process_group=self.pgid or 0,
        )
        self.pgid = self.pgid or process.pid
        self.processes.append((name, process))
        return process

    def exited(self) -> list[tuple[str, int]]:
        """(name, exit code) of every process that has exited."""
        return [(name, p.returncode) for name, p in self.processes if p.poll() is not None]

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Terminate the others, then the leader; kill after ``timeout``; sweep the group."""
        members = [p for _, p in self.processes]
        _terminate_and_wait(members[1:], timeout)
        _terminate_and_wait(members[:1], timeout)
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _terminate_and_wait(processes: list[subprocess.Popen[Any]], timeout: float) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis server on 127.0.0.1:``port`` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(group: ProcessGroup, port: int) -> str:
    """Start an in-memory ``redis-server`` on ``port`` in the group; return its URL once ready."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise DevError("redis-server not found on PATH; install Redis (or run `make redis`).")
    if redis_answers(port):
        raise DevError(f"port {port} already has a Redis server; pick another with --port.")
    argv = [
        executable,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
    ]
    process = group.start("redis", argv)
    deadline = time.monotonic() + REDIS_START_TIMEOUT_SECONDS
    while not redis_answers(port):
        if process.poll() is not None:
            code = process.returncode
            raise DevError(f"redis-server exited with code {code} (port {port} busy?)")
        if time.monotonic() > deadline:
            raise DevError(f"redis-server did not answer on port {port}")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0"


def fleet_env(broker_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for fleet processes: ``base`` (default os.environ) plus the broker URL,
    and a new random signing key unless ``base`` has one."""
    from engine.signing import generate_key

    env = dict(os.environ if base is None else base)
    env["CELERITY_BROKER_URL"] = broker_url
    if not env.get(SIGNING_KEY_ENV, "").strip():
        env[SIGNING_KEY_ENV] = generate_key()
    return env


def start_fleet(
    group: ProcessGroup,
    env: Mapping[str, str],
    workers: int,
    worker_args: tuple[str, ...] = (),
    output: IO[Any] | int | None = None,
) -> None:
    """Start ``workers`` task-run workers and one coordinator in the group."""
    for index in range(workers):
        argv = celerity_command("worker", "start", *worker_args)
        group.start(f"worker-{index + 1}", argv, env, output)
    group.start("coordinator", celerity_command("coordinator", "start"), env, output)


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_dev(workers: int, port: int | None, say: Callable[[str], None] = print) -> int:
    """Run Redis, ``workers`` workers and a coordinator until Ctrl-C or SIGTERM; exit code."""
    group = ProcessGroup()
    with _stop_on_sigterm():
        try:
            url = start_redis(group, port or free_port())
            env = fleet_env(url)
            start_fleet(group, env, workers)
            # After the workers' banners, so that the export lines end the output.
            wait_until_consuming(url, workers + 1, group)
            _announce(env, workers, say)
            return _watch(group, say)
        except KeyboardInterrupt:
            say("Stopping...")
            return 0
        finally:
            group.stop()


def wait_until_consuming(
    url: str, consumers: int, group: ProcessGroup, timeout: float = CONSUMING_TIMEOUT_SECONDS
) -> bool:
    """Wait until ``consumers`` processes block reading queues on ``url`` (each Celery worker
    does once started, its banner printed); False after ``timeout`` or if one exited."""
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not group.exited():
            waiting = [c for c in client.client_list() if c.get("cmd") in ("brpop", "blpop")]
            if len(waiting) >= consumers:
                return True
            time.sleep(0.1)
    finally:
        client.close()
    return False


def _announce(env: Mapping[str, str], workers: int, say: Callable[[str], None]) -> None:
    url = env["CELERITY_BROKER_URL"]
    say("")
    say(f"Redis: {url} ({workers} worker(s) and 1 coordinator running; Ctrl-C stops them all)")
    say("In another shell:")
    say(f"export CELERITY_BROKER_URL={url}")
    if env[SIGNING_KEY_ENV] != os.environ.get(SIGNING_KEY_ENV):  # made for this session
        say(f"export {SIGNING_KEY_ENV}={env[SIGNING_KEY_ENV]}")
    if env.get("CELERITY_WORKER_EVENTS", "").strip().lower() in ("1", "true", "yes", "on"):
        say("Events are on: celery -A workers.celery_app events (or flower) shows the fleet.")


def _watch(group: ProcessGroup, say: Callable[[str], None]) -> int:
    while True:
        dead = group.exited()
        if dead:
            names = ", ".join(f"{name} (exit code {code})" for name, code in dead)
            say(f"Stopping everything: {names} exited.")
            return 1
        time.sleep(0.5)


__all__ = [
    "DevError",
    "ProcessGroup",
    "celerity_command",
    "fleet_env",
    "free_port",
    "redis_answers",
    "run_dev",
    "start_fleet",
    "start_redis",
]
