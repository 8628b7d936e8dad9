"""Celery's own tools on a Celerity fleet: ``celery -A workers.celery_app ...`` and Flower.

A real fleet with events (``-E`` through ``CELERITY_WORKER_EVENTS``) and remote
control on, a real ``celery`` CLI and a real Flower, each a subprocess. A task
that holds until the test releases it (a BLPOP on a Redis key) keeps a job
running while the tools look at it.
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from workers.dev import ProcessGroup, free_port
from workers.main import EVENTS_FLAGS, QUIET_FLAGS, worker_argv

from .fleet import Fleet, session_fleet

T = TypeVar("T")
DEADLINE_SECONDS = 60.0
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A packed parameter: base64 of a pickle (protocol 4 or 5 starts with 0x80 0x04/0x05).
PICKLE_BASE64 = re.compile(r"gA[SW][A-Za-z0-9+/]{16,}")

HOLD_FLOWS = '''\
import os

import redis

from engine import flow, task


@task
def hold(key: str) -> str:
    """Block until the test pushes to ``key`` (at most a minute)."""
    client = redis.Redis.from_url(os.environ["CELERITY_BROKER_URL"], socket_timeout=90)
    try:
        return "released" if client.blpop([key], timeout=60) else "timed out"
    finally:
        client.close()


@flow
def held(key: str) -> str:
    return hold.submit(key).result()
'''


def eventually(
    probe: Callable[[], T | None], what: str, fleet: Fleet | None = None
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` (and the fleet's
    log) after DEADLINE_SECONDS."""
    end = time.monotonic() + DEADLINE_SECONDS
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > end:
            log = fleet.log_tail(60) if fleet is not None else ""
            raise AssertionError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.2)


# --- without a fleet --------------------------------------------------------------------------


def test_events_turn_heartbeats_and_task_events_on() -> None:
    quiet = worker_argv(["celerity"], 2, "prefork", "INFO", "worker")
    loud = worker_argv(["celerity"], 2, "prefork", "INFO", "worker", events=True)

    assert "--without-heartbeat" in quiet and "--task-events" not in quiet
    assert "--without-heartbeat" not in loud and "--task-events" in loud
    assert loud[-len(EVENTS_FLAGS):] == EVENTS_FLAGS and quiet[-len(QUIET_FLAGS):] == QUIET_FLAGS


def test_worker_events_setting_reaches_celery_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from broker_config.celery_config import celery_config
    from broker_config.settings import CeleritySettings

    monkeypatch.setenv("CELERITY_WORKER_EVENTS", "true")
    on = celery_config(CeleritySettings(broker_url="redis://127.0.0.1:1/0"))
    off = celery_config(CeleritySettings(broker_url="redis://127.0.0.1:1/0", worker_events=False))

    assert on["worker_send_task_events"] is True and on["task_send_sent_event"] is True
    assert off["worker_send_task_events"] is False and off["task_send_sent_event"] is False


def test_dash_e_turns_events_on_for_the_process_and_its_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from broker_config.settings import get_settings, reset_settings
    from celerity.cli import main
    from celerity.cli_fleet import use_events
    from workers.dev import _announce

    for command in (["worker", "start"], ["coordinator", "start"], ["dev"]):
        shown = CliRunner().invoke(main, [*command, "--help"])
        assert "-E, --events" in shown.output, (command, shown.output)

    # set first, so that monkeypatch restores the environment after use_events writes to it
    monkeypatch.setenv("CELERITY_WORKER_EVENTS", "false")
    reset_settings()
    assert get_settings().worker_events is False
    use_events(True)  # what -E does before the worker, coordinator or dev fleet starts
    assert os.environ["CELERITY_WORKER_EVENTS"] == "true" and get_settings().worker_events

    said: list[str] = []
    env = {"CELERITY_BROKER_URL": "redis://h:1/0", "CELERITY_SIGNING_KEY": "k"}
    _announce({**env, "CELERITY_WORKER_EVENTS": "true"}, 1, said.append)
    assert any("celery -A workers.celery_app" in line for line in said), said
    said.clear()
    _announce(env, 1, said.append)
    assert not any("celery -A" in line for line in said), said


def test_tools_app_is_not_a_worker_and_cannot_sign(tmp_path: Path) -> None:
    env = _tools_env("redis://127.0.0.1:1/0")
    env.pop("CELERITY_SIGNING_KEY")  # a monitor needs no key
    refused = subprocess.run(
        [*_celery(), "worker", "--pool", "solo"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert refused.returncode != 0
    assert "celerity worker start" in refused.stdout + refused.stderr

    probe = (
        "from workers.celery_app import app\n"
        "from kombu.serialization import registry\n"
        "print(app.conf.task_serializer in registry._encoders)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"  # nothing it sends can be a signed job


def test_a_queued_job_waits_in_the_list_named_after_its_queue(redis_url: str) -> None:
    """What KEDA's ScaledObject measures (deploy/kubernetes/keda): the queue's Redis list,
    holding jobs labelled with their task, flow run and task run ids."""
    from broker_config.settings import CeleritySettings
    from workers.app import create_app
    from workers.execution import publish_envelope
    from workers.protocol import Envelope, RunEntry

    url = redis_url.rsplit("/", 1)[0] + "/7"  # a database no worker consumes
    client = redis.Redis.from_url(url)
    client.flushdb()
    settings = CeleritySettings(broker_url=url, signing_key=_tools_env(url)["CELERITY_SIGNING_KEY"])
    app = create_app(settings)
    flow_run_id, runs = uuid.uuid4(), [RunEntry(uuid.uuid4(), "") for _ in range(12)]
    envelope = Envelope("square", {}, {"flow_run": {"id": str(flow_run_id)}}, None, tuple(runs))
    try:
        publish_envelope(app, envelope)
        assert client.llen(settings.default_queue) == 1
        headers = json.loads(client.lindex(settings.default_queue, 0))["headers"]
    finally:
        app.close()
        client.flushdb()
        client.close()

    assert headers["task"] == "celerity.run_tasks"
    assert headers["shadow"] == "celerity.run_tasks:square"
    label = headers["argsrepr"]
    assert label.startswith(f"square x12 of flow run {flow_run_id}: task runs [")
    assert all(str(run.id) in label for run in runs[:10]) and str(runs[10].id) not in label
    assert label.endswith(", +2 more]"), label


# --- on a fleet with events and remote control -------------------------------------------------


@pytest.fixture(scope="module")
def tools_fleet(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One worker (two processes) and a coordinator with events and remote control on."""
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    flows = tmp_path_factory.mktemp("tool_flows")
    (flows / "held_flows.py").write_text(HOLD_FLOWS)
    env = {"CELERITY_WORKER_EVENTS": "true", "CELERITY_REMOTE_CONTROL": "true"}
    with session_fleet(
        redis_server, tmp_path_factory, "tools", workers=1, pythonpath=[flows], env=env
    ) as fleet:
        fleet.env["HELD_FLOWS"] = str(flows / "held_flows.py")
        yield fleet


def test_inspect_control_and_events_see_a_running_job(tools_fleet: Fleet) -> None:
    fleet = tools_fleet
    def both_kinds_answer() -> dict[str, Any] | None:
        nodes = _replies(fleet, "inspect", "ping")
        kinds = {name.split("-")[1] for name in nodes}
        return nodes if {"worker", "coordinator"} <= kinds else None

    eventually(both_kinds_answer, "a worker and a coordinator to answer a ping", fleet)

    registered = _replies(fleet, "inspect", "registered")
    assert {"celerity.run_tasks", "celerity.run_flow"} <= {
        task for tasks in registered.values() for task in tasks
    }, registered
    stats = _replies(fleet, "inspect", "stats")
    assert all("pool" in stat for stat in stats.values()), stats

    with _held_flow(fleet) as (flow_run_id, _):
        active = eventually(lambda: _active_job(fleet, "hold"), "inspect active: hold", fleet)
        assert active["name"] == "celerity.run_tasks:hold", active
        assert f"hold x1 of flow run {flow_run_id}: task runs [" in active["args"], active
        assert not PICKLE_BASE64.search(json.dumps(active)), active  # no pickles, only ids
        assert UUID.search(active["args"].partition("task runs")[2]), active

    toggled = _replies(fleet, "control", "enable_events")
    assert toggled and all("ok" in reply for reply in toggled.values()), toggled

    assert _events_dump(fleet).startswith("celerity-worker-")


def test_enable_events_on_a_worker_without_events_says_how(tools_fleet: Fleet) -> None:
    fleet = tools_fleet
    group = ProcessGroup()
    env = {**fleet.env, "CELERITY_WORKER_EVENTS": "false"}
    log_path = Path(fleet.log_path).with_name("quiet-worker.log")
    with open(log_path, "ab") as log:
        # Its own queue, so that it takes none of the fleet's jobs.
        worker = group.start("quiet", fleet.command("worker", "start", "-q", "quiet-only",
                                                    "--pool", "solo"), env, log)
    node = f"celerity-worker-{worker.pid}@{socket.gethostname()}"
    try:
        eventually(lambda: _replies(fleet, "inspect", "ping", "-d", node), f"{node} to answer")
        replies = _replies(fleet, "control", "enable_events", "-d", node)
        assert "celerity worker start -E" in replies[node]["error"], replies
    finally:
        group.stop(timeout=5.0)


def test_flower_lists_workers_tasks_and_metrics(tools_fleet: Fleet) -> None:
    fleet = tools_fleet
    port = free_port()
    group = ProcessGroup()
    log_path = Path(fleet.log_path).with_name("flower.log")
    with open(log_path, "ab") as log:
        group.start(
            "flower",
            [*_celery(), "flower", f"--port={port}", "--address=127.0.0.1"],
            {**fleet.env, "FLOWER_UNAUTHENTICATED_API": "true"},
            log,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def both_kinds_online() -> list[str] | None:
            found = _get_json(f"{base}/api/workers?refresh=1&status=1")
            names = [name for name, alive in (found or {}).items() if alive]
            return names if {"worker", "coordinator"} <= {n.split("-")[1] for n in names} else None

        eventually(both_kinds_online, "Flower to list a worker and a coordinator online", fleet)

        with _held_flow(fleet) as (flow_run_id, release):
            task = eventually(lambda: _flower_task(base, flow_run_id), "Flower to list hold", fleet)
            assert task["name"] == "celerity.run_tasks:hold", task
            release()
            done = eventually(
                lambda: _flower_task(base, flow_run_id, state="SUCCESS"), "hold to succeed", fleet
            )
        assert not PICKLE_BASE64.search(json.dumps(done)), done  # no pickles in the task view
        assert done["worker"].startswith("celerity-worker-"), done

        page = html.unescape(_get_text(f"{base}/task/{done['uuid']}") or "")
        assert f"hold x1 of flow run {flow_run_id}" in page, page
        assert not PICKLE_BASE64.search(page), page

        # Flower updates its counters as it handles each event: wait for both.
        online = re.compile(r'flower_worker_online\{worker="celerity-worker-[^"]+"\} 1\.0')
        succeeded = re.compile(
            r'flower_events_total\{task="celerity\.run_tasks:hold",'
            r'type="task-succeeded",worker="celerity-worker-[^"]+"\} [1-9]'
        )

        def counted() -> str | None:
            text = _get_text(f"{base}/metrics") or ""
            return text if online.search(text) and succeeded.search(text) else None

        eventually(counted, "Flower's /metrics to count the worker and the succeeded task", fleet)
    finally:
        group.stop(timeout=5.0)


# --- helpers ------------------------------------------------------------------------------------


def _celery() -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app"]


def _tools_env(broker_url: str) -> dict[str, str]:
    from .fleet import fleet_environment

    return fleet_environment(broker_url)


def _replies(fleet: Fleet, verb: str, command: str, *options: str) -> dict[str, Any]:
    """``celery -A workers.celery_app <verb> <command> --json``: {node: reply} ({} if none)."""
    result = subprocess.run(
        [*_celery(), verb, command, "--json", "--timeout", "2", *options],
        env=fleet.env, capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        assert "No nodes replied" in result.stdout + result.stderr, (
            result.stdout + result.stderr + fleet.log_tail()
        )
        return {}
    replies: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        if line.startswith(("{", "[")):  # inspect prints {node: reply}, control [{node: reply}]
            parsed = json.loads(line)
            for reply in parsed if isinstance(parsed, list) else [parsed]:
                replies.update(reply)
    return replies


def _active_job(fleet: Fleet, task: str) -> dict[str, Any] | None:
    for jobs in _replies(fleet, "inspect", "active").values():
        for job in jobs:
            if job["name"].endswith(f":{task}"):
                return dict(job)
    return None


HEARTBEAT_LINE = re.compile(r"^celerity-worker-\S+ \[[^\]]+\] heartbeat", re.M)


def _events_dump(fleet: Fleet) -> str:
    """A heartbeat of one of our workers, as ``celery events --dump`` prints it."""
    group = ProcessGroup()
    log_path = Path(fleet.log_path).with_name("events.log")
    with open(log_path, "wb") as log:
        group.start("events", [*_celery(), "events", "--dump"], fleet.env, log)

    def heartbeat() -> str | None:
        found = HEARTBEAT_LINE.search(log_path.read_text(errors="replace"))
        return found.group(0) if found else None

    try:
        return eventually(heartbeat, "celery events --dump to show a worker heartbeat", fleet)
    finally:
        group.stop(timeout=5.0)


@contextmanager
def _held_flow(fleet: Fleet) -> Iterator[tuple[uuid.UUID, Callable[[], None]]]:
    """Submit ``held``; yield its flow run id and a function that releases its task."""
    key = f"release-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(fleet.env["CELERITY_BROKER_URL"])
    released: list[bool] = []

    def release() -> None:
        if not released:
            client.lpush(key, "go")
            released.append(True)

    try:
        result = subprocess.run(
            fleet.command("flow", "submit", f"{fleet.env['HELD_FLOWS']}:held", "-p", f"key={key}"),
            env=fleet.env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        found = UUID.search(result.stdout)
        assert found, result.stdout
        yield uuid.UUID(found.group(0)), release
    finally:
        release()
        client.close()


def _get_text(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _get_json(url: str) -> Any:
    text = _get_text(url)
    return json.loads(text) if text else None


def _flower_task(base: str, flow_run_id: uuid.UUID, state: str | None = None) -> Any:
    """The task-run job Flower knows (from events) whose label names ``flow_run_id``."""
    tasks = _get_json(f"{base}/api/tasks") or {}
    for task_id, task in tasks.items():
        if (
            str(task.get("name")).startswith("celerity.run_tasks")
            and str(flow_run_id) in (task.get("args") or "")
            and state in (None, task.get("state"))
        ):
            return {**task, "uuid": task_id}
    return None
