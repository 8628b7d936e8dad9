"""Side-effect recording for the semantics suite.

Tasks and flows record what they did through ``record(key, value)`` and tests
read it back with ``recorded(key)``. On the embedded runner this is an
in-process dict; when ``CELERITY_BROKER_URL`` is set (the suite's Celery run)
the records go to a Redis list, so that effects made on worker processes are
visible to the test.
"""

import os
import pickle
import threading
from collections import defaultdict

_lock = threading.Lock()
_records: defaultdict[str, list] = defaultdict(list)
_clients: dict = {}


def _redis():
    url = os.environ.get("CELERITY_BROKER_URL")
    if not url:
        return None
    if url not in _clients:
        import redis

        _clients[url] = redis.Redis.from_url(url)
    return _clients[url]


def record(key: str, value) -> None:
    """Append ``value`` to the list stored under ``key``."""
    client = _redis()
    if client is not None:
        client.rpush(f"test-effects:{key}", pickle.dumps(value))
        return
    with _lock:
        _records[str(key)].append(value)


def recorded(key: str) -> list:
    """A copy of every value recorded under ``key``, in recording order."""
    client = _redis()
    if client is not None:
        return [pickle.loads(item) for item in client.lrange(f"test-effects:{key}", 0, -1)]
    with _lock:
        return list(_records.get(str(key), []))
