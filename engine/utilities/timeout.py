"""Running a synchronous callable with a time limit.

What can be interrupted: in the main thread a SIGALRM timer raises inside the
function, which stops pure-Python code and blocking calls such as
``time.sleep`` or socket reads at once. Elsewhere (worker threads) the function
runs in a helper thread: the caller gets the timeout on time and the helper
receives an asynchronous exception, which Python delivers at its next bytecode,
so a call blocked in C keeps going until it returns. Async functions are
cancelled with ``asyncio.wait_for`` at their next ``await``.
"""

from __future__ import annotations

import contextvars
import ctypes
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def call_with_timeout(
    fn: Callable[[], T], timeout: float | None, error: Callable[[], BaseException]
) -> T:
    """``fn()``, raising ``error()`` if it takes longer than ``timeout`` seconds."""
    if not timeout:
        return fn()
    if _can_use_alarm():
        return _call_with_alarm(fn, timeout, error)
    return _call_in_helper_thread(fn, timeout, error)


def _can_use_alarm() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    if not hasattr(signal, "setitimer"):
        return False
    # A timer already set belongs to an outer run; don't steal it.
    return signal.getitimer(signal.ITIMER_REAL)[0] == 0


def _call_with_alarm(fn: Callable[[], T], timeout: float, error: Callable[[], BaseException]) -> T:
    def on_alarm(signum: int, frame: Any) -> None:
        raise error()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call_in_helper_thread(
    fn: Callable[[], T], timeout: float, error: Callable[[], BaseException]
) -> T:
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(fn)
        except BaseException as exc:  # carried back to the caller below
            outcome["error"] = exc

    helper = threading.Thread(target=target, name="celerity-timeout", daemon=True)
    helper.start()
    helper.join(timeout)
    if helper.is_alive():
        exc = error()
        _raise_in_thread(helper, type(exc))
        raise exc
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _raise_in_thread(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    # The stdlib has no public way to stop a thread; this C-API call asks the
    # interpreter to raise in it at its next bytecode.
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type)
        )
