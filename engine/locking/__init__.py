"""Lock managers: what makes ``IsolationLevel.SERIALIZABLE`` transactions wait for each other.

- ``MemoryLockManager``: threads and tasks of one process (embedded runs).
- ``FileSystemLockManager``: processes that share a directory.
- ``RedisLockManager``: every process of a fleet (redis-py's ``Lock``).

Example::

    from engine.locking import FileSystemLockManager
    from engine.results import ResultStore
    from engine.transactions import IsolationLevel, transaction

    store = ResultStore(lock_manager=FileSystemLockManager(lock_files_directory="/tmp/locks"))
    with transaction(key="nightly", store=store, isolation_level=IsolationLevel.SERIALIZABLE):
        ...
"""

from engine.locking.filesystem import FileSystemLockManager
from engine.locking.memory import MemoryLockManager
from engine.locking.protocol import LockManager
from engine.locking.redis import RedisLockManager

__all__ = ["FileSystemLockManager", "LockManager", "MemoryLockManager", "RedisLockManager"]
