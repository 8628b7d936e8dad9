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

from engine.schemas import FlowRun
from engine.store import MemoryRunStore, get_store, set_store

# How far back get_most_recent_flow_run looks for a flow's runs.
RECENT_RUNS_SCANNED = 500


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


def exceptions_equal(a: BaseException, b: BaseException) -> bool:
    """Whether two exceptions are the same error: equal, or of one type with equal args.

    Exceptions compare by identity, and a result read back from a store is a
    copy; this compares what they were raised with.
    """
    return a == b or (type(a) is type(b) and getattr(a, "args", None) == getattr(b, "args", None))


async def get_most_recent_flow_run(client: Any = None, flow_name: str | None = None) -> FlowRun:
    """The newest flow run in the process's run store (of ``flow_name`` when given).

    ``client`` is accepted for compatibility and unused: there is no API
    server, the run store is read directly. Raises LookupError when none.
    """
    for run in get_store().list_flow_runs(limit=RECENT_RUNS_SCANNED):
        if flow_name is None or run.flow_name == flow_name:
            return run
    raise LookupError(f"No flow run{f' of flow {flow_name!r}' if flow_name else ''} in the store.")


__all__ = ["exceptions_equal", "get_most_recent_flow_run", "prefect_test_harness"]
