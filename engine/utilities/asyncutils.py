"""Running coroutines from synchronous code that may already be inside a loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_coro_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh loop in a helper thread (keeping context)."""
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, coro)
        except BaseException as exc:  # carried back to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="celerity-async")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_coro_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` from sync code: directly if no loop is running, else in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return run_coro_in_thread(coro)


def in_async_context() -> bool:
    """True when called from a coroutine (a loop is running in this thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def sync_compatible(fn: Callable[..., T]) -> Callable[..., Any]:
    """Make a blocking function awaitable from coroutines, like the seed's helpers.

    Called from sync code it runs and returns its value; called from a
    coroutine it returns an awaitable that runs it in a helper thread (with the
    caller's context), so ``await pause_flow_run()`` does not block the loop.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if in_async_context():
            return asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper
