"""Spec item 12: KeyboardInterrupt / SystemExit / SIGTERM crash the run and re-raise."""

import os
import signal

import pytest

from engine import flow, task
from engine.context import FlowRunContext, TaskRunContext
from engine.exceptions import TerminationSignal

from . import _helpers as h
from ._side_effects import record, recorded
from ._tasks import flow_on_crashed


@task
def interrupting_task(key, kind):
    record(f"{key}:task", str(TaskRunContext.get().task_run.id))
    if kind == "keyboard":
        raise KeyboardInterrupt
    raise SystemExit(3)


@flow
def flow_with_interrupting_task(key, kind):
    record(f"{key}:flow", str(FlowRunContext.get().flow_run.id))
    interrupting_task(key, kind)
    return "unreachable"


@flow(on_crashed=[flow_on_crashed])
def interrupting_flow(key, kind):
    record(f"{key}:flow", str(FlowRunContext.get().flow_run.id))
    if kind == "keyboard":
        raise KeyboardInterrupt
    raise SystemExit(4)


@flow(on_crashed=[flow_on_crashed])
def terminated_flow(key):
    record(f"{key}:flow", str(FlowRunContext.get().flow_run.id))
    os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would
    signal.pause()  # the signal's exception arrives while waiting
    return "unreachable"


class TestCrashes:
    def test_keyboard_interrupt_in_task_crashes_task_and_flow(self, key):
        with pytest.raises(KeyboardInterrupt):
            flow_with_interrupting_task(key, "keyboard")
        (task_run_id,) = recorded(f"{key}:task")
        (flow_run_id,) = recorded(f"{key}:flow")
        assert h.names(task_run_id) == ["Pending", "Running", "Crashed"]
        assert h.names(flow_run_id) == ["Pending", "Running", "Crashed"]

    def test_system_exit_in_task_crashes_task_and_flow(self, key):
        with pytest.raises(SystemExit):
            flow_with_interrupting_task(key, "exit")
        (task_run_id,) = recorded(f"{key}:task")
        (flow_run_id,) = recorded(f"{key}:flow")
        assert h.names(task_run_id) == ["Pending", "Running", "Crashed"]
        assert h.names(flow_run_id) == ["Pending", "Running", "Crashed"]

    def test_keyboard_interrupt_in_task_outside_flow(self, key):
        with pytest.raises(KeyboardInterrupt):
            interrupting_task(key, "keyboard")
        (task_run_id,) = recorded(f"{key}:task")
        assert h.names(task_run_id) == ["Pending", "Running", "Crashed"]

    @pytest.mark.parametrize(
        ("kind", "expected"), [("keyboard", KeyboardInterrupt), ("exit", SystemExit)]
    )
    def test_interrupt_in_flow_crashes_and_runs_on_crashed_hook(self, key, kind, expected):
        with pytest.raises(expected):
            interrupting_flow(key, kind)
        (flow_run_id,) = recorded(f"{key}:flow")
        assert h.names(flow_run_id) == ["Pending", "Running", "Crashed"]
        assert recorded(f"hooks:{flow_run_id}") == [("on_crashed", "interrupting-flow", "Crashed")]

    def test_sigterm_crashes_the_flow_run_runs_its_hook_and_is_raised(self, key):
        """A flow run's process told to stop ends the run Crashed at once (not when
        its lease lapses), with its hooks; the handler before the run is put back."""
        before = []
        previous = signal.signal(signal.SIGTERM, lambda *args: before.append(args[0]))
        try:
            with pytest.raises(TerminationSignal):
                terminated_flow(key, return_state=True)
            (flow_run_id,) = recorded(f"{key}:flow")
            assert h.names(flow_run_id) == ["Pending", "Running", "Crashed"]
            assert "termination signal" in h.history(flow_run_id)[-1].message
            assert recorded(f"hooks:{flow_run_id}") == [
                ("on_crashed", "terminated-flow", "Crashed")
            ]
            assert before == []  # the run's handler, not this one, took the signal
            os.kill(os.getpid(), signal.SIGTERM)
            assert before == [signal.SIGTERM]  # and this one is back
        finally:
            signal.signal(signal.SIGTERM, previous)
