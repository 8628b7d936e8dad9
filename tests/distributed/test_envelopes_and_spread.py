"""Signed envelopes and real spreading of one flow's task runs over worker processes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from kombu.serialization import register

from broker_config.celery_config import ENVELOPE_CONTENT_TYPE
from engine import flow, task
from engine.signing import Signer
from engine.store import get_store

from .fleet import Fleet, session_fleet, use_broker


@task
def report_pid(index: int) -> tuple[int, int]:
    time.sleep(0.2)  # long enough that one process cannot take every message
    return index, os.getpid()


@flow
def spread(count: int) -> list:
    return report_pid.map(range(count)).result()


class MarkerOnUnpickle:
    """Creates a file when unpickled: proof that a payload was deserialized."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def envelope_fleet(redis_server, tmp_path_factory) -> Iterator[Fleet]:
    with session_fleet(
        redis_server, tmp_path_factory, "envelope-fleet", workers=2, concurrency=1
    ) as fleet:
        yield fleet


@pytest.fixture
def on_fleet(envelope_fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    use_broker(monkeypatch, envelope_fleet.env["CELERITY_BROKER_URL"])
    return envelope_fleet


def _wait_for_log(fleet: Fleet, text: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in fleet.log_path.read_text(errors="replace"):
            return True
        time.sleep(0.1)  # polling a log file: there is no event to wait on
    return False


def _evil_envelope(marker: str) -> dict:
    import base64
    import pickle

    payload = base64.b64encode(pickle.dumps(MarkerOnUnpickle(marker))).decode()
    run_id = str(uuid.uuid4())
    return {
        "v": 3,  # any version: it is rejected before anything reads it
        "task": {"name": "evil", "ref": {"pickle": payload}},
        "context": {},
        "runs": [{"id": run_id, "parameters": payload}],
    }


class TestSpreadOverWorkers:
    def test_one_flows_tasks_run_on_two_worker_processes_not_the_coordinator(self, on_fleet):
        # Given two single-process workers, when a flow maps 8 slow-ish tasks
        state = spread(8, return_state=True)
        results = state.result()
        # Then every result is right, and at least two processes ran them, none of them us
        assert sorted(index for index, _ in results) == list(range(8))
        pids = {pid for _, pid in results}
        assert len(pids) >= 2, on_fleet.log_tail()
        assert os.getpid() not in pids
        task_runs = get_store().read_task_runs(state.state_details.flow_run_id)
        assert {run.worker.rsplit(":", 1)[1] for run in task_runs} == {str(p) for p in pids}


class TestEnvelopeVerification:
    def test_unsigned_and_tampered_envelopes_are_rejected_unread(self, on_fleet, tmp_path):
        from workers.app import get_app
        from workers.execution import RUN_TASKS

        app = get_app()
        unsigned_marker = tmp_path / "unsigned-was-unpickled"
        tampered_marker = tmp_path / "tampered-was-unpickled"

        # Given an envelope sent as plain JSON (no signature at all)
        app.send_task(RUN_TASKS, args=[_evil_envelope(str(unsigned_marker))], serializer="json")

        # And an envelope signed with the right key, then altered in transit
        signer = Signer(on_fleet.env["CELERITY_SIGNING_KEY"])

        def tampered(body) -> bytes:
            import json

            signed = signer.sign(json.dumps(body).encode())
            altered = signed.replace(b'"v": ', b'"v":  ', 1)  # one byte more, same signature
            assert altered != signed
            return altered

        register(
            "celerity-tampered",
            tampered,
            lambda raw: None,
            content_type=ENVELOPE_CONTENT_TYPE,
            content_encoding="binary",
        )
        try:
            app.send_task(
                RUN_TASKS,
                args=[_evil_envelope(str(tampered_marker))],
                serializer="celerity-tampered",
            )
        finally:
            from workers.envelope import register_envelope_serializer

            register_envelope_serializer(signer)  # give this process its real decoder back

        # Then the workers log both rejections ...
        assert _wait_for_log(on_fleet, "failed signature verification"), on_fleet.log_tail()
        assert _wait_for_log(on_fleet, "ContentDisallowed") or _wait_for_log(
            on_fleet, "disallowed"
        ), on_fleet.log_tail()
        # ... nothing was unpickled ...
        assert not unsigned_marker.exists()
        assert not tampered_marker.exists()
        # ... and the workers keep serving real flows.
        assert sorted(i for i, _ in spread(2)) == [0, 1]
