"""A dispatched task run whose message is lost is sent again by its coordinator.

Not by the broker's visibility timeout (an hour): the reaper sees the run still
Pending, unclaimed by any worker, its queue moved past it (here: empty), and
sends it again from the parameters it holds.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import redis

from engine import flow, task
from engine.store import get_store
from workers.dev import celerity_command

from .fleet import TESTS_DIR, running_fleet, use_broker

pytestmark = pytest.mark.faults

LOST_QUEUE = "lost-messages"
LEASE = {"CELERITY_LEASE_SECONDS": "1"}


@task(queue=LOST_QUEUE)
def marked(key: str) -> int:
    client = redis.Redis.from_url(os.environ["CELERITY_BROKER_URL"])
    return int(client.incr(f"{key}:ran"))


@flow
def one_marked(key: str) -> int:
    return marked.submit(key).result()


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # polling Redis: there is no event to wait on
    return False


class TestLostMessage:
    def test_a_run_whose_message_vanished_is_resent_and_runs_once(
        self, own_redis, tmp_path, monkeypatch
    ):
        client = redis.Redis.from_url(own_redis.url)
        key = f"lost-{time.monotonic_ns()}"
        # Given a fleet with no worker on the task's queue, and a flow run sending it a task
        with running_fleet(
            own_redis.url, tmp_path / "fleet.log", workers=1, pythonpath=[TESTS_DIR], env=LEASE
        ) as fleet:
            use_broker(monkeypatch, own_redis.url, **LEASE)
            outcome: dict = {}
            thread = threading.Thread(
                target=lambda: outcome.update(state=one_marked(key, return_state=True)),
                daemon=True,
            )
            thread.start()
            assert _wait_for(lambda: client.llen(LOST_QUEUE) == 1, 30), fleet.log_tail()
            # When the message is lost before any worker took it
            client.delete(LOST_QUEUE)
            # And a worker for that queue appears
            with open(fleet.log_path, "ab") as log:  # the child keeps its own copy
                fleet.group.start(
                    "lost-queue-worker",
                    celerity_command("worker", "start", "--queues", LOST_QUEUE, "-c", "1"),
                    fleet.env,
                    log,
                )
            thread.join(60)
            # Then the run was sent again and ran exactly once
            assert not thread.is_alive(), fleet.log_tail()
            state = outcome["state"]
            assert state.is_completed(), (state, fleet.log_tail())
            assert state.result() == 1
            assert client.get(f"{key}:ran") == b"1"
            task_runs = get_store().read_task_runs(state.state_details.flow_run_id)
            assert [run.state.name for run in task_runs] == ["Completed"]
