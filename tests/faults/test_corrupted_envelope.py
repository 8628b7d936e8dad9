"""A queued envelope of a real run altered in Redis under its intact signature.

With no worker running yet, a flow run's task-run messages wait in the task
queue's Redis list; the test rewrites the body of one of them in place (one
character of its JSON changed, the signature left as it was), then starts the
workers. The worker that takes it finds the signature does not match, logs it,
drops it and serves on; the coordinator's reaper sees the run never started
although its queue moved past it, and sends it again from the parameters it
holds. The flow completes, that run executed once.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest
import redis

from workers.producer import submit_flow_run, wait_for_flow_run

from .chaos import (
    Ledger,
    account,
    assert_only_killed_exited,
    item_names,
    start_worker,
    state_names,
    wait_until,
)
from .chaos_flows import expected_sum, map_reduce

pytestmark = pytest.mark.faults

TASK_QUEUE = "celerity"
N = 4  # one message per run: ceil(4 / 64) runs per message
LEASE = 2.0  # L
# The reaper resends a run no worker started once it was sent 2 L ago and its queue
# moved past it, at its next pass (every L). Here it was sent about when the workers
# started, so within 3 L of the drop; plus 2 s to run it and the reduce.
COMPLETES_AFTER_DROP = 3 * LEASE + 2.0


def corrupt(message: bytes) -> bytes:
    """The kombu message with one character of its signed JSON body changed (a digit of
    its send time), the signature kept."""
    outer = json.loads(message)
    signed = base64.b64decode(outer["body"])
    signature, separator, body = signed.partition(b".")
    assert separator and len(signature) == 64, signed[:80]
    position = body.index(b'"sent":') + len(b'"sent":')
    digit = body[position : position + 1]
    assert digit.isdigit(), body[position - 20 : position + 20]
    altered = body[:position] + (b"1" if digit != b"1" else b"2") + body[position + 1 :]
    outer["body"] = base64.b64encode(signature + separator + altered).decode()
    return json.dumps(outer).encode()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_a_tampered_envelope_is_dropped_and_its_run_resent(
    chaos_fleet, redis_url, chaos_key, client
) -> None:
    # Given a fleet whose task workers are not started yet, and a submitted flow run
    with chaos_fleet(redis_url, lease=LEASE, workers=0) as fleet:
        run_id = submit_flow_run(map_reduce, {"key": chaos_key, "n": N})
        wait_until(lambda: client.llen(TASK_QUEUE) == N, 60, "the map's messages queued",
                   fleet.log_tail)  # fmt: skip
        # When one queued message's signed body is altered in place
        original = client.lindex(TASK_QUEUE, 1)
        tampered = corrupt(original)
        client.lset(TASK_QUEUE, 1, tampered)
        assert client.lindex(TASK_QUEUE, 1) != original
        # And two workers start
        start_worker(fleet, "worker-1")
        start_worker(fleet, "worker-2")
        # Then a worker logs and drops it, and keeps serving
        to_drop = wait_until(
            lambda: "failed signature verification" in _dropped(fleet),
            60,
            "the drop logged at WARNING",
            fleet.log_tail,
        )
        dropped_at = time.monotonic()
        # And the flow run completes correctly within the bound
        state = wait_for_flow_run(run_id, timeout=COMPLETES_AFTER_DROP)
        print(
            f"\ntampered envelope: dropped {to_drop:.1f}s after the workers started, "
            f"flow completed {time.monotonic() - dropped_at:.1f}s after the drop (L={LEASE}s)"
        )
        assert state.is_completed(), (state, fleet.log_tail())
        assert state.result() == expected_sum(N)
        # And each task ran once, the dropped run's too, and every run is final
        outcome = account(run_id, Ledger.read(redis_url, chaos_key), item_names(N))
        assert outcome.lost_after_finishing == []
        for run in outcome.task_runs:
            assert state_names(run.id) == ["Pending", "Running", "Completed"], run.name
        assert_only_killed_exited(fleet, [])


def _dropped(fleet) -> str:
    """The fleet's WARNING lines that report a message dropped from the task queue."""
    text = fleet.log_path.read_text(errors="replace")
    return "\n".join(
        line
        for line in text.splitlines()
        if "WARNING" in line and "Dropped" in line and f"queue {TASK_QUEUE!r}" in line
    )
