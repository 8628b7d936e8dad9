"""Remote control: with CELERITY_REMOTE_CONTROL=true, plain ``celery inspect`` reaches the workers.

The task queues accept only the signed envelope; the control mailbox speaks
JSON, as every Celery remote-control client does.
"""

from __future__ import annotations

import time
from pathlib import Path

from celery import Celery

from broker_config.settings import CeleritySettings
from workers.app import create_app

from .fleet import running_fleet

READY_DEADLINE_SECONDS = 60.0


def _ping_until_answered(app: Celery, deadline: float) -> list[dict]:
    # Each ping waits up to a second for replies; a worker still starting has none yet.
    replies: list[dict] = []
    while not replies and time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
    return replies


def test_plain_celery_client_inspects_a_worker(redis_url: str, tmp_path: Path) -> None:
    env = {"CELERITY_REMOTE_CONTROL": "true"}
    log_path = tmp_path / "fleet.log"
    with running_fleet(redis_url, log_path, workers=1, concurrency=1, env=env) as fleet:
        plain = Celery("plain-client", broker=redis_url, set_as_current=False)
        try:
            replies = _ping_until_answered(plain, time.monotonic() + READY_DEADLINE_SECONDS)
            assert replies, f"no worker replied to a JSON ping\n{fleet.log_tail()}"
            assert all(reply == {"ok": "pong"} for r in replies for reply in r.values())
            # celery inspect, as the README promises, not only ping
            stats = plain.control.inspect(timeout=2.0).active_queues()
            assert stats and any(
                q["name"] == "celerity" for queues in stats.values() for q in queues
            ), stats
        finally:
            plain.close()
        # Celerity's own app is a remote-control client too.
        own = create_app(CeleritySettings(broker_url=redis_url))
        try:
            assert _ping_until_answered(own, time.monotonic() + 10.0)
        finally:
            own.close()
        assert "ContentDisallowed" not in fleet.log_tail(400)
