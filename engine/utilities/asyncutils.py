"""Bridging sync and async code: running coroutines from sync code, and
functions that return an awaitable when called from async code."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import sys
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


# --- one name, a sync and an async implementation ------------------------------------


def is_in_async_context() -> bool:
    """True when the caller should get an awaitable rather than a value.

    Inside a flow or task run the run's own function decides: code in a sync
    task stays sync even when an async flow's event loop runs in the same
    thread. Outside any run, a running event loop means the caller is a
    coroutine. Without a running loop nothing could await the result, so the
    answer is always False there (and the run context is not consulted, which
    keeps the common sync path cheap).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    # Deferred: engine.context imports the states, which dispatch through here.
    from engine.context import FlowRunContext, TaskRunContext

    run = TaskRunContext.get() or FlowRunContext.get()
    if run is None:
        return True
    owner = getattr(run, "task", None) or getattr(run, "flow", None)
    return bool(getattr(owner, "isasync", True))


_ENGINE_PACKAGES = ("engine.", "workers.")


def _called_from_engine() -> bool:
    # The dispatch serves user code. Celerity's own modules always want the
    # value (a future's result(), the engines reading a state), so a call made
    # directly from them takes the sync side without a ``_sync=True`` at every
    # call site. Frame 2 is the caller of the dispatching wrapper.
    module = sys._getframe(2).f_globals.get("__name__", "")
    return str(module).startswith(_ENGINE_PACKAGES)


def async_dispatch(
    async_impl: Callable[..., Coroutine[Any, Any, Any]],
) -> Callable[[Callable[..., T]], Callable[..., Any]]:
    """Give a sync function an async twin chosen by the caller's context.

    The decorated function runs ``async_impl`` (returning its coroutine) when
    called from async code (see ``is_in_async_context``) and itself otherwise.
    A caller can force either side with ``_sync=True`` / ``_sync=False``; the
    async twin is also reachable as ``fn.aio``. Calls made from Celerity's own
    modules (``engine``, ``workers``) always run the sync side.

    Example::

        async def aload(key): ...

        @async_dispatch(aload)
        def load(key): ...

        load("k")            # sync code: the value
        await load("k")      # async code: the coroutine of aload
    """
    if isinstance(async_impl, (classmethod, staticmethod)):
        async_impl = async_impl.__func__
    if not inspect.iscoroutinefunction(async_impl):
        raise TypeError("async_impl must be an async function")

    def decorator(sync_fn: Callable[..., T]) -> Callable[..., Any]:
        @functools.wraps(sync_fn)
        def dispatch(*args: Any, **kwargs: Any) -> Any:
            forced = kwargs.pop("_sync", None)
            if forced is None:
                run_sync = not is_in_async_context() or _called_from_engine()
            else:
                run_sync = bool(forced)
            return (sync_fn if run_sync else async_impl)(*args, **kwargs)

        dispatch.aio = async_impl  # type: ignore[attr-defined]
        return dispatch

    return decorator
