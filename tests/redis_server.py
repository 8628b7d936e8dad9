"""A real ``redis-server`` subprocess for tests: free port, own directory, restartable."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.02


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    """Return True when a Redis server on ``port`` answers PING."""
    # A raw socket keeps this helper free of the client library under test.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process bound to 127.0.0.1 on a fixed port.

    ``stop()`` and ``start()`` may be called repeatedly; the port stays the
    same so that clients can reconnect after a simulated outage.

    Example::

        server = RedisServer()
        server.start()
        server.url  # 'redis://127.0.0.1:PORT/0'
        server.close()
    """

    def __init__(self, port: int | None = None, executable: str = "redis-server") -> None:
        self.port = port or free_port()
        self.executable = executable
        self.directory = Path(tempfile.mkdtemp(prefix="celerity-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The Redis URL of logical database 0 on this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        # No persistence: tests want a clean server and no disk writes on exit.
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.directory),
            "save": "",
            "appendonly": "no",
            "protected-mode": "no",
            "loglevel": "warning",
            "logfile": str(self.directory / "redis.log"),
        }
        args = [self.executable]
        for name, value in options.items():
            args += [f"--{name}", value]
        return args

    def start(self) -> None:
        """Start the server (if it is not running) and return once it answers PING."""
        if self.running:
            return
        if shutil.which(self.executable) is None:
            raise RuntimeError(f"{self.executable} not found; run `make redis`")
        self.process = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if ping(self.port):
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early: {self.log_tail()}")
            time.sleep(POLL_SECONDS)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.stop()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the server's log file, for error messages."""
        log = self.directory / "redis.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def serving(server: RedisServer) -> Iterator[RedisServer]:
    """Start ``server``, yield it, and close it afterwards (the body of a fixture)."""
    server.start()
    try:
        yield server
    finally:
        server.close()
