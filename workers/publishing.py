"""Grouping task-run entries into few Celery messages.

Inside ``collecting(n)`` (a ``map`` call, or the listener handling one read
of completion events) entries are held per (runner, task, queue) and sent as
messages of up to ``n`` task runs; each run is still tracked one by one in the
store. Outside it, each entry is sent at once, so a single ``submit`` or a
chain hop never waits for company.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

Sender = Callable[[Hashable, list[Any]], None]

_local = threading.local()


class _Batch:
    def __init__(self, per_message: int) -> None:
        self.per_message = max(1, per_message)
        self.groups: dict[Hashable, tuple[Sender, list[Any]]] = {}

    def add(self, sender: Sender, key: Hashable, entry: Any) -> None:
        _, entries = self.groups.setdefault(key, (sender, []))
        entries.append(entry)
        if len(entries) >= self.per_message:
            self.groups.pop(key)
            sender(key, entries)

    def flush(self) -> None:
        groups, self.groups = self.groups, {}
        for key, (sender, entries) in groups.items():
            sender(key, entries)


@contextmanager
def collecting(per_message: int) -> Iterator[None]:
    """Hold entries offered in this thread and send them in messages of ``per_message``."""
    if getattr(_local, "batch", None) is not None:
        yield  # an outer scope already collects
        return
    batch = _local.batch = _Batch(per_message)
    try:
        yield
    finally:
        _local.batch = None
        batch.flush()


def offer(sender: Sender, key: Hashable, entry: Any) -> None:
    """Send ``entry`` now, or hold it if this thread is collecting."""
    batch = getattr(_local, "batch", None)
    if batch is None:
        sender(key, [entry])
    else:
        batch.add(sender, key, entry)
