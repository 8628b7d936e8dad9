"""Side-effect recording for the semantics suite.

Tasks and flows record what they did through ``record(key, value)`` and tests
read it back with ``recorded(key)``. For now this is an in-process dict; it is
the single place to switch to a shared backend (e.g. Redis) when the suite runs
on a distributed runner, so values must stay simple (str, int, float, bool,
None, tuples/lists of those).
"""

import threading
from collections import defaultdict

_lock = threading.Lock()
_records: defaultdict[str, list] = defaultdict(list)


def record(key: str, value) -> None:
    """Append ``value`` to the list stored under ``key``."""
    with _lock:
        _records[str(key)].append(value)


def recorded(key: str) -> list:
    """A copy of every value recorded under ``key``, in recording order."""
    with _lock:
        return list(_records.get(str(key), []))
