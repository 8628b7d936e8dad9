"""Ending a child process when its parent dies, so that no flow run goes unsupervised.

A coordinator runs each flow run in a child process. If the coordinator is
killed (SIGKILL, OOM) the child would keep running with nobody to report its
end; the run's lease then lapses and the run is ended Crashed and possibly
retried elsewhere, so the orphan must not go on producing effects.

Two mechanisms, as neither covers every case alone:

- on Linux the kernel sends the child SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), even if the child is stuck in C code. The
  kernel means the parent *thread*: the thread that started the child must
  outlive it (the coordinator's thread waits in ``join()``);
- everywhere, a daemon thread polls ``os.getppid()``, which changes when the
  parent process is gone, and exits the process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger("celerity.parent_death")

POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_EXIT_CODE = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this process end soon after ``parent_pid``, its parent, dies.

    Call it first thing in the child, with the parent's pid as the parent saw it
    (``os.getpid()`` before starting the child). Exits at once if the parent
    is already gone.
    """
    _ask_kernel_for_sigkill()
    # The parent may have died before the kernel was asked: then no signal comes.
    _exit_if_orphaned(parent_pid)
    watch_parent(parent_pid)


def watch_parent(parent_pid: int, poll: float = POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that exits the process once ``parent_pid`` is no longer its parent."""
    thread = threading.Thread(
        target=_watch, args=(parent_pid, poll), name="celerity-parent-watch", daemon=True
    )
    thread.start()
    return thread


def _ask_kernel_for_sigkill() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        failed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0
    except (OSError, AttributeError):  # no libc or no prctl: the watch thread remains
        failed = True
    if failed:
        logger.debug("prctl(PR_SET_PDEATHSIG) failed; relying on the parent watch thread")


def _watch(parent_pid: int, poll: float) -> None:
    while True:
        _exit_if_orphaned(parent_pid)
        time.sleep(poll)


def _exit_if_orphaned(parent_pid: int) -> None:
    if os.getppid() == parent_pid:
        return
    logger.warning(
        "Process %s exits: its parent %s is gone, nothing supervises it.", os.getpid(), parent_pid
    )
    # No cleanup that could block or write on behalf of a run nobody supervises.
    os._exit(_EXIT_CODE)
