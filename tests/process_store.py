"""Letting a test build the process's run store from its own settings, then closing it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fresh_process_store() -> Iterator[None]:
    """Inside the block the process store is built anew from settings on first use.

    On leaving, the store that was built is closed (a Redis store left to the
    garbage collector would warn about unclosed sockets, which
    ``filterwarnings = error`` turns into failures) and the previous one is back.
    """
    from engine.store import set_store

    previous = set_store(None)
    try:
        yield
    finally:
        built = set_store(previous)
        if built is not None and built is not previous:
            built.close()
