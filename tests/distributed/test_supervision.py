"""A flow run process dies with the process that started it (a coordinator), never runs on alone.

The parent here is a plain Python process running ``run_flow_in_subprocess``
on the embedded store, standing in for a coordinator; it is SIGKILLed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import flow

pytestmark = pytest.mark.faults

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent
DEADLINE_SECONDS = 30.0
GONE_WITHIN_SECONDS = 5.0


@flow
def sleeps_long(started: str) -> None:
    Path(started).write_text(str(os.getpid()))
    time.sleep(120)


STARTS_A_FLOW_RUN = """
    import sys, time
    from distributed.test_supervision import sleeps_long
    from engine.flow_engine import run_flow_in_subprocess

    run_flow_in_subprocess(sleeps_long, parameters={"started": sys.argv[1]})
    time.sleep(120)
"""

STARTS_A_WATCHED_CHILD = """
    import os, subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[1], str(os.getpid())])
    time.sleep(120)
"""

WATCHES_ITS_PARENT = """
    import os, sys, time
    from pathlib import Path
    from engine.utilities.parent_death import watch_parent

    watch_parent(int(sys.argv[2]))
    Path(sys.argv[1]).write_text(str(os.getpid()))
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (dead, not yet reaped by its new parent) does not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel (a zombie counts as alive there)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return fields[0] not in ("Z", "X")


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_in(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen]]]:
    """Start a parent Python process on a script; kill it and the child it names at the end."""
    started = tmp_path / "child.pid"
    parents: list[subprocess.Popen] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERITY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), str(REPO_ROOT)])
    env["XDG_CONFIG_HOME"] = os.environ.get("XDG_CONFIG_HOME", str(tmp_path))

    def start(script: str, *args: str) -> subprocess.Popen:
        argv = [sys.executable, "-c", textwrap.dedent(script), str(started), *args]
        process = subprocess.Popen(argv, env=env, cwd=tmp_path)
        parents.append(process)
        return process

    yield started, start  # type: ignore[misc]
    for process in parents:
        if process.poll() is None:
            process.kill()
        process.wait()
    child = _pid_in(started)
    if child is not None and _alive(child):
        os.kill(child, signal.SIGKILL)


def _kill_parent_and_expect_the_child_gone(process: subprocess.Popen, started: Path) -> None:
    assert _wait_for(lambda: _pid_in(started) is not None, DEADLINE_SECONDS), "child never started"
    child = _pid_in(started)
    assert child is not None and _alive(child)
    process.kill()  # SIGKILL: no chance to stop its children
    process.wait()
    assert _wait_for(lambda: not _alive(child), GONE_WITHIN_SECONDS), f"child {child} outlived it"


def test_a_flow_run_process_dies_with_its_killed_parent(parent) -> None:
    # Given a parent running a long flow run in a child process
    started, start = parent
    process = start(STARTS_A_FLOW_RUN)
    # When the parent is SIGKILLed, then the flow run process is gone within seconds
    _kill_parent_and_expect_the_child_gone(process, started)


def test_the_watch_thread_alone_ends_an_orphan(parent) -> None:
    # Given a child that only watches its parent (as where prctl is missing)
    started, start = parent
    process = start(STARTS_A_WATCHED_CHILD, textwrap.dedent(WATCHES_ITS_PARENT))
    # When the parent is SIGKILLed, then the child exits on its own within seconds
    _kill_parent_and_expect_the_child_gone(process, started)
