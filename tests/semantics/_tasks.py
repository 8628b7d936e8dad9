"""Module-level tasks, flows and hooks shared by the semantics tests.

Everything here is importable by name (no closures) so the suite can later run
on a distributed runner. Side effects go through ``_side_effects``.
"""

import time

from engine import flow, task

from ._side_effects import record, recorded

# --- tasks --------------------------------------------------------------------


@task
def add(x, y):
    return x + y


@task
def identity(x):
    return x


@task
def fail_task(message="boom"):
    raise ValueError(message)


@task
def record_task(key, value):
    record(key, value)
    return value


@task
def slow_task(seconds, value):
    time.sleep(seconds)  # simulated work
    return value


@task
def slow_record_task(key, seconds, value):
    time.sleep(seconds)  # simulated work
    record(key, value)
    return value


def flaky_body(key, fail_times):
    """Fail the first ``fail_times`` attempts (counted through side effects)."""
    record(key, "attempt")
    attempt = len(recorded(key))
    if attempt <= fail_times:
        raise ValueError(f"attempt {attempt} failed")
    return attempt


@task
def flaky(key, fail_times):
    return flaky_body(key, fail_times)


# --- hooks --------------------------------------------------------------------
# Task hooks are called as hook(task, task_run, state); flow hooks as
# hook(flow, flow_run, state). Both record under "hooks:<run id>".


def hook_key(run) -> str:
    return f"hooks:{run.id}"


def task_on_completion(tsk, task_run, state):
    record(hook_key(task_run), ("on_completion", tsk.name, state.name))


def task_on_failure(tsk, task_run, state):
    record(hook_key(task_run), ("on_failure", tsk.name, state.name))


def task_on_running(tsk, task_run, state):
    record(hook_key(task_run), ("on_running", tsk.name, state.name))


def flow_on_completion(flw, flow_run, state):
    record(hook_key(flow_run), ("on_completion", flw.name, state.name))


def flow_on_failure(flw, flow_run, state):
    record(hook_key(flow_run), ("on_failure", flw.name, state.name))


def flow_on_cancellation(flw, flow_run, state):
    record(hook_key(flow_run), ("on_cancellation", flw.name, state.type.value))


def flow_on_crashed(flw, flow_run, state):
    record(hook_key(flow_run), ("on_crashed", flw.name, state.name))


def flow_on_running(flw, flow_run, state):
    record(hook_key(flow_run), ("on_running", flw.name, state.name))


def exploding_hook(obj, run, state):
    record(hook_key(run), ("exploding_hook", state.name))
    raise RuntimeError("hook exploded on purpose")


# --- flows run in a subprocess (see test_subprocess.py) -------------------------


@flow
def subprocess_add_flow(x: int, y: int):
    return x + y


@flow
def subprocess_failing_flow(message: str):
    raise ValueError(message)
