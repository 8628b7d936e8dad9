"""Waiting for a lock by asking again, for managers that cannot be woken when it frees.

A lock in a file or in Redis gives no notification when its holder releases
it (or when it lapses), so the waiting side retries at a short interval, as
redis-py's own ``Lock.acquire`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_SECONDS = 0.05


def poll(attempt: Callable[[], bool], timeout: float | None) -> bool:
    """Call ``attempt`` until it returns True or ``timeout`` seconds pass (None: no limit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if attempt():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(_pause(deadline))


async def apoll(attempt: Callable[[], bool], timeout: float | None) -> bool:
    """``poll`` for coroutines: the loop runs other tasks between attempts."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if attempt():
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_pause(deadline))


def _pause(deadline: float | None) -> float:
    if deadline is None:
        return POLL_SECONDS
    return max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
