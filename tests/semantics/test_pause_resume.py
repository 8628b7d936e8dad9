"""Pause and resume: a paused flow run waits until resumed, and receives typed run input."""

import threading
import time

import pytest

from engine import flow, pause_flow_run, resume_flow_run, suspend_flow_run, task
from engine.context import FlowRunContext
from engine.input import RunInput
from engine.store import get_store

from . import _helpers as h


class Approval(RunInput):
    approved: bool
    note: str = ""


@task
def prepare(x: int) -> int:
    return x + 1


@flow
def needs_approval(x: int):
    prepared = prepare(x)
    approval = pause_flow_run(wait_for_input=Approval, timeout=30)
    return prepared, approval.approved, approval.note


@flow
def plain_pause():
    pause_flow_run(timeout=30)
    return "resumed"


@flow
def never_resumed():
    pause_flow_run(timeout=1)
    return "unreachable"


def _start(flow_fn, *args):
    """Run ``flow_fn`` in a thread; returns the thread, its outcome and its flow run id."""
    outcome: dict = {}
    started = threading.Event()

    def target():
        try:
            outcome["state"] = flow_fn(*args, return_state=True)
        finally:
            started.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


class TestPauseResume:
    def test_paused_run_resumes_with_typed_input(self):
        thread, outcome = _start(needs_approval, 4)
        run_id = h.paused_run_id("needs-approval")
        resume_flow_run(run_id, run_input={"approved": True, "note": "ship it"})
        thread.join(20)
        assert outcome["state"].result() == (5, True, "ship it")
        assert h.names(run_id) == ["Pending", "Running", "Paused", "Running", "Completed"]

    def test_resume_without_required_input_is_refused(self):
        thread, outcome = _start(needs_approval, 1)
        run_id = h.paused_run_id("needs-approval")
        with pytest.raises(ValueError, match="waits for input"):
            resume_flow_run(run_id)
        resume_flow_run(run_id, run_input={"approved": False})
        thread.join(20)
        assert outcome["state"].result() == (2, False, "")

    def test_resume_with_input_of_the_wrong_type_is_refused(self):
        thread, outcome = _start(needs_approval, 1)
        run_id = h.paused_run_id("needs-approval")
        with pytest.raises(ValueError, match="wrong type for 'approved'"):
            resume_flow_run(run_id, run_input={"approved": "not-a-bool"})
        assert get_store().read_flow_run(run_id).state.is_paused()
        resume_flow_run(run_id, run_input={"approved": True, "note": "ok"})
        thread.join(20)
        assert outcome["state"].result() == (2, True, "ok")

    def test_plain_pause_and_resume(self):
        thread, outcome = _start(plain_pause)
        resume_flow_run(h.paused_run_id("plain-pause"))
        thread.join(20)
        assert outcome["state"].result() == "resumed"

    def test_pause_timeout_fails_the_run(self):
        state = never_resumed(return_state=True)
        assert state.is_failed()
        assert "not resumed" in state.message

    def test_pause_outside_a_flow_is_an_error(self):
        from engine.exceptions import MissingContextError

        assert FlowRunContext.get() is None
        with pytest.raises(MissingContextError):
            pause_flow_run()


@flow
def pauses_twice_with_a_named_second_pause():
    first = pause_flow_run(wait_for_input=int, timeout=30)
    second = pause_flow_run(wait_for_input=Approval, timeout=30, key="review")
    return first, second.approved


def _wait_for_pauses(run_id, count: int, timeout: float = 20.0) -> None:
    """Until the run has been Paused ``count`` times and is paused now (it runs in a thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = h.names(run_id)
        if names.count("Paused") >= count and names[-1] == "Paused":
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not pause {count} times: {h.names(run_id)}")


class TestPauseKeys:
    """The input a pause waits for is under Prefect's keys: paused-<n>-* or paused-<key>-*."""

    def test_keys_count_pauses_or_use_the_given_key(self):
        from engine.input import keyset_from_paused_state, read_flow_run_input

        thread, outcome = _start(pauses_twice_with_a_named_second_pause)
        run_id = h.paused_run_id("pauses-twice-with-a-named-second-pause")
        state = get_store().read_flow_run(run_id).state
        assert state.state_details.pause_key == "1"
        keyset = keyset_from_paused_state(state)
        assert keyset["schema"] == "paused-1-schema"
        assert "value" in read_flow_run_input(keyset["schema"], flow_run_id=run_id)["properties"]
        resume_flow_run(run_id, run_input={"value": 7})
        _wait_for_pauses(run_id, 2)
        second = keyset_from_paused_state(get_store().read_flow_run(run_id).state)
        assert second["response"] == "paused-review-response"
        resume_flow_run(run_id, run_input={"approved": True})
        thread.join(20)
        assert outcome["state"].result() == (7, True)


@flow
def suspends():
    suspend_flow_run()


@flow
def parent_of_suspending_subflow():
    suspends()


@flow
async def suspends_async():
    await suspend_flow_run()


class TestSuspend:
    """Suspending needs a deployment to restart the run from; Celerity has none."""

    def test_a_flow_cannot_suspend(self):
        with pytest.raises(RuntimeError, match="without a deployment.*pause_flow_run"):
            suspends()

    def test_an_async_flow_cannot_suspend(self):
        import asyncio

        with pytest.raises(RuntimeError, match="without a deployment"):
            asyncio.run(suspends_async())

    def test_a_subflow_cannot_suspend(self):
        with pytest.raises(RuntimeError, match="Cannot suspend subflows"):
            parent_of_suspending_subflow()
