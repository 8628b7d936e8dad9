"""``prefect_test_harness``: run a test session's flows against a fresh run store.

Example (a pytest fixture, as in the seed's testing docs)::

    @pytest.fixture(autouse=True, scope="session")
    def harness():
        with prefect_test_harness():
            yield
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.store import MemoryRunStore, get_store, set_store


@contextmanager
def prefect_test_harness(
    server_startup_timeout: int | None = None, **_options: Any
) -> Iterator[None]:
    """Use a fresh in-memory run store inside the block, then restore the previous store.

    With a Redis store configured (the Celery runner) the store is kept:
    workers must see the same runs, so the block changes nothing.
    ``server_startup_timeout`` is accepted for compatibility; there is no server.
    """
    previous = get_store()
    if not previous.url.startswith("memory://"):
        yield
        return
    set_store(MemoryRunStore())
    try:
        yield
    finally:
        set_store(previous)


__all__ = ["prefect_test_harness"]
