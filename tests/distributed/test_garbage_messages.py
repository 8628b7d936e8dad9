"""A message that cannot be decoded is logged with its queue and dropped; the fleet serves on.

Garbage is pushed straight onto the Redis lists behind the task queue and the
flow queue, as anyone with access to Redis could.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine import flow, task
from workers.producer import submit_flow_run, wait_for_flow_run

from .fleet import Fleet, running_fleet, use_broker

pytestmark = pytest.mark.faults

TESTS_DIR = Path(__file__).resolve().parents[1]
TASK_QUEUE, FLOW_QUEUE = "celerity", "flows"
DEADLINE_SECONDS = 60.0


@task
def double(x: int) -> int:
    return 2 * x


@flow
def doubled(x: int) -> int:
    return double.submit(x).result()


def foreign_content_type(task_name: str, **headers: str) -> bytes:
    """A well-formed kombu message for one of our tasks, but with a JSON body."""
    body = json.dumps([[], {}, {"callbacks": None}]).encode()
    message = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": task_name, "id": str(uuid.uuid4()), **headers},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": "", "routing_key": ""},
        },
    }
    return json.dumps(message).encode()


def _without_id(message: bytes) -> bytes:
    decoded = json.loads(message)
    del decoded["headers"]["id"]
    return json.dumps(decoded).encode()


# (what is pushed, a fragment of the reason the WARNING gives)
GARBAGE = {
    TASK_QUEUE: [
        (b"\x00\xff not json {", "not JSON"),
        (b'{"a": 1}', "'body' is missing"),
        (foreign_content_type("celerity.run_tasks"), "ContentDisallowed"),
        (json.dumps({**json.loads(foreign_content_type("t")), "body": "abc"}).encode(), "base64"),
        # Celery's handler for an unknown task raises on a message without an id
        (_without_id(foreign_content_type("no.such.task")), "consumer failed on it"),
    ],
    FLOW_QUEUE: [
        (b"[1, 2", "not JSON"),
        (foreign_content_type("celerity.run_flow"), "ContentDisallowed"),
    ],
}


@pytest.fixture
def garbage_fleet(redis_url, tmp_path, monkeypatch) -> Iterator[Fleet]:
    from process_store import fresh_process_store

    log_path = tmp_path / "fleet.log"
    with running_fleet(
        redis_url, log_path, workers=2, concurrency=1, pythonpath=[TESTS_DIR]
    ) as fleet:
        use_broker(monkeypatch, redis_url)
        with fresh_process_store():
            yield fleet


def _warnings_missing(fleet: Fleet) -> list[str]:
    text = fleet.log_path.read_text(errors="replace")
    dropped = [line for line in text.splitlines() if "WARNING" in line and "Dropped" in line]
    return [
        f"{queue}: {reason}"
        for queue, items in GARBAGE.items()
        for _, reason in items
        if not any(f"queue {queue!r}" in line and reason in line for line in dropped)
    ]


def _wait_for_warnings(fleet: Fleet) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (missing := _warnings_missing(fleet)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not missing, (missing, fleet.log_tail())


def test_undecodable_messages_are_logged_and_dropped_and_the_fleet_serves_on(
    garbage_fleet: Fleet, redis_url: str
) -> None:
    # Given a running fleet
    client = redis.Redis.from_url(redis_url)
    try:
        # When garbage lands on the task queue and on the flow queue
        for queue, items in GARBAGE.items():
            for payload, _ in items:
                client.lpush(queue, payload)
        # Then each message is logged at WARNING with its queue and reason, and dropped
        _wait_for_warnings(garbage_fleet)
        assert client.llen(TASK_QUEUE) == 0 and client.llen(FLOW_QUEUE) == 0
    finally:
        client.close()
    # And every worker and the coordinator are still alive
    assert garbage_fleet.group.exited() == [], garbage_fleet.log_tail()
    # And a flow submitted afterwards still completes on the fleet
    run_id = submit_flow_run(doubled, {"x": 21})
    state = wait_for_flow_run(run_id, timeout=DEADLINE_SECONDS)
    assert state.is_completed(), (state, garbage_fleet.log_tail())
    assert state.result() == 42
    assert garbage_fleet.group.exited() == [], garbage_fleet.log_tail()


class TestTransportSelection:
    def test_redis_brokers_use_celeritys_transport(self) -> None:
        from broker_config.celery_config import REDIS_TRANSPORT, broker_transport

        assert broker_transport("redis://h:1/0") == {"broker_transport": REDIS_TRANSPORT}
        assert broker_transport("memory://") == {}
        assert broker_transport(None) == {}

    def test_rediss_keeps_tls_with_verified_certificates_unless_the_url_says(self) -> None:
        from celery import Celery

        from broker_config.celery_config import broker_transport

        for url, expected in [("rediss://h:1/0", 2), ("rediss://h:1/0?ssl_cert_reqs=none", 0)]:
            app = Celery("tls-check", set_as_current=False)
            app.conf.update(broker_url=url, **broker_transport(url))
            connection = app.connection_for_write()
            assert connection.transport_cls == "workers.transport:Transport"
            assert connection.ssl["ssl_cert_reqs"] == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([1, 2], "JSON list"),
        ({"a": 1}, "'body' is missing"),
        ({"body": "", "headers": "x", "properties": {}}, "'headers'"),
        (
            {
                "body": "!",
                "headers": {},
                "properties": {},
                "content-type": "a",
                "content-encoding": "b",
            },
            "delivery_tag",
        ),
    ],
)
def test_malformed_messages_are_named(raw, reason) -> None:
    from workers.transport import why_malformed

    assert reason in (why_malformed(raw) or "")


def test_a_message_kombu_publishes_is_well_formed() -> None:
    from workers.transport import why_malformed

    assert why_malformed(json.loads(foreign_content_type("celerity.run_tasks"))) is None
