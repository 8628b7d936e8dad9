"""SIGTERM during a flow run: an exception in the run, so that it ends Crashed at once.

Without this, SIGTERM kills a ``celerity flow run`` process (or a coordinator's
flow child) on the spot: the run stays Running until its lease lapses and a
sweeper ends it, a few lease periods later, and its ``on_crashed`` hooks never
run. With it, the flow engine sees ``TerminationSignal`` like any interruption:
the run ends Crashed, its hooks run, and the exception goes on up, so the
process still ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.exceptions import TerminationSignal


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises ``TerminationSignal`` in the main thread.

    Only in the main thread (the only one Python delivers signals to, and the
    only one that may set a handler); elsewhere it does nothing. The handler
    that was there before is put back on the way out.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_termination)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_termination(signum: int, frame: Any) -> None:
    raise TerminationSignal(signal=signum)
