"""Fixtures for the dashboard's tests: a real fleet, ``celerity dashboard`` as a subprocess,
and Debian's headless chromium driven by Selenium through Debian's chromedriver.

The fleet has remote control on (the dashboard lists workers through Celery's
inspect). Nothing here downloads a browser: ``make test`` installs chromium and
chromedriver with apt (``deploy/ensure-chromium.sh``); without them these tests fail,
saying so, rather than being skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from distributed.fleet import Fleet, session_fleet

from workers.dev import free_port

T = TypeVar("T")
DEADLINE_SECONDS = 60.0
TOKEN = "dashboard-test-token"

FLOWS = '''\
import os

import redis

from engine import flow, get_run_logger, task


@task
def square(x: int) -> int:
    return x * x


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def divide(a: int, b: int) -> float:
    return a / b


@task
def hold(key: str) -> str:
    """Block until the test pushes to ``key`` (at most a minute)."""
    client = redis.Redis.from_url(os.environ["CELERITY_BROKER_URL"], socket_timeout=90)
    try:
        return "released" if client.blpop([key], timeout=60) else "timed out"
    finally:
        client.close()


@task(queue="metered")
def metered(x: int) -> int:
    return x + 1


@flow
def metered_flow(n: int) -> list[int]:
    return [future.result() for future in metered.map(range(n))]


@flow
def diamond(x: int) -> int:
    first, second = square.submit(x), square.submit(x + 1)
    total = add.submit(first, second).result()
    get_run_logger().info("diamond total is %s", total)
    return total


@flow
def child(x: int) -> int:
    return square.submit(x).result()


@flow
def parent(x: int) -> int:
    return child(x) + 1


@flow
def broken(a: int) -> float:
    return divide.submit(a, 0).result()


@flow
def gate(amount: int) -> str:
    from engine import pause_flow_run
    from engine.input import RunInput

    class Decision(RunInput):
        approved: bool

    decision = pause_flow_run(wait_for_input=Decision, timeout=60)
    return f"{amount} approved" if decision.approved else f"{amount} refused"


@flow
def held(key: str) -> str:
    started = square.submit(2)
    waiting = hold.submit(key)
    return f"{started.result()} {waiting.result()}"
'''


def poll(read: Callable[[], T | None], what: str, timeout: float = DEADLINE_SECONDS) -> T:
    """Call ``read`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = read()
        except Exception as exc:  # not there yet (connection refused, element missing)
            last_error, value = exc, None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


@dataclass
class Dashboard:
    """A running ``celerity dashboard`` subprocess and where it listens."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str) -> Any:
        """GET ``path`` and decode its JSON."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def text(self, path: str) -> str:
        """GET ``path`` as text."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode()

    def post(self, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """POST JSON to ``path``; the status and the decoded answer (errors included)."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body or {}).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:  # an error response holds its socket until closed
                return exc.code, json.loads(exc.read() or b"null")

    def status(self, path: str) -> int:
        """The HTTP status of GET ``path``."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code

    def log_tail(self) -> str:
        """What the dashboard process printed, for assertion messages."""
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="package")
def flows_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dash_flows.py`` in a directory of its own (put on the fleet's PYTHONPATH)."""
    path = tmp_path_factory.mktemp("dashboard-flows") / "dash_flows.py"
    path.write_text(FLOWS)
    return path


@pytest.fixture(scope="package")
def fleet(
    redis_server: Any, flows_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Two workers and a coordinator with remote control on, on the session's flushed Redis."""
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    with session_fleet(
        redis_server,
        tmp_path_factory,
        "dashboard-fleet",
        pythonpath=[flows_file.parent],
        env={"CELERITY_REMOTE_CONTROL": "true"},
    ) as running:
        yield running


def start_dashboard(fleet: Fleet, log_path: Path, token: str | None) -> Dashboard:
    """``celerity dashboard`` on a free port with the fleet's settings, once it answers."""
    port = free_port()
    env = dict(fleet.env)
    if token is not None:
        env["CELERITY_DASHBOARD_TOKEN"] = token
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            fleet.command("dashboard", "--host", "127.0.0.1", "--port", str(port)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    dashboard = Dashboard(f"http://127.0.0.1:{port}", process, log_path)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the dashboard exited:\n{dashboard.log_tail()}")
        return dashboard.get("/healthz")["ok"] is True

    poll(answers, "the dashboard to answer")
    return dashboard


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a subprocess, killing it if it does not exit in a few seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="package")
def dashboard(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The fleet's dashboard, with actions allowed by ``TOKEN``."""
    log_path = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    running = start_dashboard(fleet, log_path, TOKEN)
    try:
        yield running
    finally:
        stop(running.process)


def _system_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(
            "Debian's chromium and chromedriver are needed: `make browser` (or "
            "`apt-get install chromium chromium-driver`)",
            pytrace=False,
        )
    return chromium, driver


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """A headless chromium (the system's) under Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = _system_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def celerity(fleet: Fleet, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``celerity ARGS`` as a separate process with the fleet's environment."""
    return subprocess.run(
        fleet.command(*args),
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def submit(fleet: Fleet, target: str, *params: str, wait: bool = True) -> str:
    """Submit a flow of ``dash_flows`` to the fleet; its flow run id (after its end with
    ``wait``, whatever its final state)."""
    args = ["flow", "submit", target, *params]
    if wait:
        args += ["--wait", "--timeout", str(DEADLINE_SECONDS)]
    result = celerity(fleet, *args)
    if not result.stdout.strip():
        raise AssertionError(f"submit printed nothing:\n{result.stderr}\n{fleet.log_tail()}")
    return result.stdout.splitlines()[0].strip()
