"""Transactions: work that commits or rolls back as one unit (the seed API's model).

A ``transaction()`` block groups the task runs inside it. A task run that
completes in the block *stages* its result and its ``on_commit`` /
``on_rollback`` hooks on a child transaction; when the block ends normally the
transaction commits (commit hooks run, cache records are written), and when it
raises it rolls back (rollback hooks of the completed task runs run, newest
first, and nothing is cached). Example::

    from engine import flow, task
    from engine.transactions import transaction

    @task
    def write_file(path: str) -> None: ...

    @write_file.on_rollback
    def remove_file(txn) -> None: ...

    @flow
    def pipeline() -> None:
        with transaction(key="nightly-export") as txn:
            if txn.is_committed():
                return  # done by an earlier run
            write_file("out.csv")
            check_quality()  # raising here calls remove_file

What differs from the seed API (see docs/architecture.md, "Transactions"):

- A rollback hook that raises is logged and the remaining hooks still run
  (the seed API stops at the first failing hook).
- A block waits, before it commits or rolls back, for the task runs submitted
  inside it, so their hooks always belong to it.
- A task run that fails *after its retries* rolls its transaction back (the
  seed API also rolls back when an attempt that will be retried fails).
- ``SERIALIZABLE`` takes a lock per key that only serializes blocks within one
  process; ``READ_COMMITTED`` (the default) is what records give anyway.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from enum import Enum
from typing import Any, ClassVar, Protocol

Hook = Callable[["Transaction"], Any]


class _NotSet:
    def __repr__(self) -> str:
        return "NotSet"


NotSet: Any = _NotSet()


class IsolationLevel(str, Enum):
    """How a transaction with a key sees other transactions with the same key."""

    READ_COMMITTED = "READ_COMMITTED"
    SERIALIZABLE = "SERIALIZABLE"


class CommitMode(str, Enum):
    """When a transaction commits: at its own exit (EAGER), with its outermost
    transaction (LAZY, the default), or only when ``commit()`` is called (OFF)."""

    EAGER = "EAGER"
    LAZY = "LAZY"
    OFF = "OFF"


class TransactionState(str, Enum):
    """Where a transaction is in its life."""

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STAGED = "STAGED"
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


_FINISHED = (TransactionState.COMMITTED, TransactionState.ROLLED_BACK)


class TransactionStore(Protocol):
    """Where a keyed transaction's record lives: ``exists``, ``read``, ``write``."""

    def exists(self, key: str) -> bool: ...

    def read(self, key: str) -> Any: ...

    def write(self, key: str, value: Any) -> None: ...


class RecordStore:
    """Transaction records kept as cache records in the process's run store.

    Task runs and transactions share one key space, as in the seed API: a
    committed task run's record is the cache entry a later run reuses.
    """

    def exists(self, key: str) -> bool:
        """True if a committed (unexpired) record exists under ``key``."""
        from engine.store import get_store

        return get_store().read_cache(key) is not None

    def read(self, key: str) -> Any:
        """The value committed under ``key``, or None."""
        from engine.store import get_store

        state = get_store().read_cache(key)
        return None if state is None else state.result()

    def write(self, key: str, value: Any) -> None:
        """Commit ``value`` (a task run's final state, or any value) under ``key``."""
        from engine.states import State
        from engine.store import get_store

        state = value if isinstance(value, State) else _record_state(value)
        get_store().write_cache(key, state, state.state_details.cache_expiration)


def _record_state(value: Any) -> Any:
    from engine.context import FlowRunContext, TaskRunContext
    from engine.results import default_storage
    from engine.states import Completed

    context = TaskRunContext.get() or FlowRunContext.get()
    storage = getattr(context, "result_storage", None) or default_storage()
    state = Completed(data=value)
    state.result_ref = storage.write(value)  # other processes read records by reference
    return state


# --- SERIALIZABLE: one lock per key in this process -------------------------------------

_key_locks: dict[str, threading.Lock] = {}
_key_locks_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _key_locks_guard:
        return _key_locks.setdefault(key, threading.Lock())


class Transaction:
    """One unit of work: values, staged results and hooks, committed or rolled back together.

    Enter it with ``with`` (or use ``transaction()``); ``get_transaction()``
    returns the innermost active one.
    """

    _var: ClassVar[ContextVar[Transaction | None]] = ContextVar(
        "celerity_transaction", default=None
    )

    def __init__(
        self,
        key: str | None = None,
        store: TransactionStore | None = None,
        commit_mode: CommitMode | None = None,
        isolation_level: IsolationLevel | None = None,
        overwrite: bool = False,
        write_on_commit: bool = True,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.key = key
        self.store = store
        self.commit_mode = commit_mode
        self.isolation_level = isolation_level
        self.overwrite = overwrite
        self.write_on_commit = write_on_commit
        self.logger = logger or _default_logger()
        self.state = TransactionState.PENDING
        self.children: list[Transaction] = []
        self.on_commit_hooks: list[Hook] = []
        self.on_rollback_hooks: list[Hook] = []
        self.task_run_id: uuid.UUID | None = None  # set when a task run owns it
        self._values: dict[str, Any] = {}
        self._staged_value: Any = None
        self._parent: Transaction | None = None
        self._token: Token[Transaction | None] | None = None
        self._lock = threading.RLock()
        self._submitted = _SubmittedRuns()
        self._key_lock: threading.Lock | None = None

    # --- values -----------------------------------------------------------------------

    def set(self, name: str, value: Any) -> None:
        """Keep ``value`` under ``name`` for the rest of this transaction (and its hooks)."""
        self._values[name] = value

    def get(self, name: str, default: Any = NotSet) -> Any:
        """A copy of the value stored under ``name``, looked up in parents too.

        Raises ValueError if no transaction in the chain has it and no default
        is given. Changing the returned value does not change the stored one.
        """
        if name in self._values:
            return copy.deepcopy(self._values[name])
        if self._parent is not None:
            return self._parent.get(name, default)
        if default is not NotSet:
            return default
        raise ValueError(f"Could not retrieve value for unknown key: {name}")

    def read(self) -> Any:
        """The value committed under this transaction's key, if any."""
        if self.store is not None and self.key:
            return self.store.read(self.key)
        return None

    # --- state --------------------------------------------------------------------------

    def is_pending(self) -> bool:
        return self.state == TransactionState.PENDING

    def is_active(self) -> bool:
        return self.state == TransactionState.ACTIVE

    def is_staged(self) -> bool:
        return self.state == TransactionState.STAGED

    def is_committed(self) -> bool:
        return self.state == TransactionState.COMMITTED

    def is_rolled_back(self) -> bool:
        return self.state == TransactionState.ROLLED_BACK

    def get_parent(self) -> Transaction | None:
        """The transaction this one was entered inside, if any."""
        return self._parent

    @classmethod
    def get_active(cls) -> Transaction | None:
        """The innermost transaction active in this context, or None."""
        return cls._var.get()

    # --- entering and leaving -----------------------------------------------------------

    def __enter__(self) -> Transaction:
        if self._token is not None:
            raise RuntimeError("This transaction is already entered; create a new one to nest.")
        parent = get_transaction()
        self._parent = parent
        self._inherit(parent)
        self.state = TransactionState.ACTIVE
        self.begin()
        self._token = self._var.set(self)
        return self

    def _inherit(self, parent: Transaction | None) -> None:
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent else CommitMode.LAZY
        if self.isolation_level is None:
            self.isolation_level = parent.isolation_level if parent else None
        self.isolation_level = IsolationLevel(self.isolation_level or IsolationLevel.READ_COMMITTED)
        self.commit_mode = CommitMode(self.commit_mode)

    def begin(self) -> None:
        """Take the key's lock (SERIALIZABLE); a key with a record starts COMMITTED."""
        if self.key and self.isolation_level == IsolationLevel.SERIALIZABLE:
            self._key_lock = _lock_for(self.key)
            self._key_lock.acquire()
        if not self.overwrite and self.store is not None and self.key:
            if self.store.exists(self.key):
                self.state = TransactionState.COMMITTED

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._token is None:
            raise RuntimeError("Transaction exited without being entered.")
        # Interruptions (KeyboardInterrupt...) must not wait for submitted runs.
        if exc_type is None or issubclass(exc_type, Exception):
            self._submitted.wait()
        try:
            if exc_type is not None:
                self.rollback()
            else:
                self._finish()
        finally:
            self._reset()

    def _finish(self) -> None:
        if self.commit_mode == CommitMode.EAGER:
            self.commit()
        if self._parent is not None:
            return  # the parent commits or rolls back this one with itself
        if self.commit_mode == CommitMode.OFF:
            self.rollback()  # nobody committed it: undo (a no-op once committed)
        elif self.commit_mode == CommitMode.LAZY:
            self.commit()

    def _reset(self) -> None:
        parent = self._parent
        if parent is not None:
            parent.add_child(self)
        if self._token is not None:
            self._var.reset(self._token)
            self._token = None
        self._release_key_lock()
        # A child that rolled back takes its parent with it, as in the seed API.
        if parent is not None and self.is_rolled_back():
            parent.rollback()

    def _release_key_lock(self) -> None:
        lock, self._key_lock = self._key_lock, None
        if lock is not None:
            lock.release()

    # --- staging, commit, rollback -------------------------------------------------------

    def add_child(self, transaction: Transaction) -> None:
        """Make ``transaction`` commit and roll back with this one.

        A child added after this transaction rolled back is rolled back at once,
        and one added after it committed is committed at once.
        """
        with self._lock:
            if transaction not in self.children:
                self.children.append(transaction)
            state = self.state
        if state == TransactionState.ROLLED_BACK:
            transaction.rollback()
        elif state == TransactionState.COMMITTED:
            transaction.commit()

    def stage(
        self,
        value: Any,
        on_rollback_hooks: list[Hook] | None = None,
        on_commit_hooks: list[Hook] | None = None,
    ) -> None:
        """Hold ``value`` and hooks until commit or rollback (ignored once committed)."""
        with self._lock:
            if self.state == TransactionState.COMMITTED:
                return
            self._staged_value = value
            self.on_rollback_hooks.extend(on_rollback_hooks or [])
            self.on_commit_hooks.extend(on_commit_hooks or [])
            self.state = TransactionState.STAGED

    def commit(self) -> bool:
        """Commit children, run commit hooks, write the record; False if already finished.

        A commit hook or record write that raises rolls the transaction back.
        """
        with self._lock:
            if self.state in _FINISHED:
                return False
            try:
                self._commit_contents()
            except Exception:
                self.logger.exception("An error was encountered while committing %r", self.key)
                self.rollback()
                return False
            self.state = TransactionState.COMMITTED
        self._release_key_lock()
        return True

    def _commit_contents(self) -> None:
        for child in list(self.children):
            child.commit()
        for hook in self.on_commit_hooks:
            self.run_hook(hook, "commit")
        if self.store is not None and self.key and self.write_on_commit:
            self.store.write(self.key, self._staged_value)

    def rollback(self) -> bool:
        """Run rollback hooks (newest first), then roll back children; False if finished.

        A rollback hook that raises is logged, and the remaining hooks still run.
        """
        with self._lock:
            if self.state in _FINISHED:
                return False
            # Marked first: a hook that looks at the transaction sees it rolled back.
            self.state = TransactionState.ROLLED_BACK
            for hook in reversed(self.on_rollback_hooks):
                self._run_rollback_hook(hook)
            for child in reversed(list(self.children)):
                child.rollback()
        self._release_key_lock()
        return True

    def _run_rollback_hook(self, hook: Hook) -> None:
        try:
            self.run_hook(hook, "rollback")
        except Exception:
            pass  # run_hook logged it; the other compensations must still run

    def run_hook(self, hook: Hook, kind: str) -> None:
        """Call ``hook(self)`` with log lines around it; re-raises what the hook raises."""
        name = getattr(hook, "__name__", repr(hook))
        self.logger.info("Running %s hook %r", kind, name)
        try:
            outcome = hook(self)
            if asyncio.iscoroutine(outcome):
                from engine.utilities.asyncutils import run_coro_sync

                run_coro_sync(outcome)
        except Exception:
            self.logger.exception("An error was encountered while running %s hook %r", kind, name)
            raise
        self.logger.info("%s hook %r finished running successfully", kind.capitalize(), name)

    # --- task runs submitted inside -------------------------------------------------------

    def watch_submitted(self, task: Any, future: Any) -> None:
        """Settle a submitted task run in this transaction once its future is done."""
        self._submitted.add()

        def settle(done: Any) -> None:
            try:
                if not self._ran_here(done.task_run_id):
                    stage_finished_run(self, task, done.state)
            finally:
                self._submitted.done()

        future.add_done_callback(settle)

    def _ran_here(self, task_run_id: uuid.UUID) -> bool:
        # A run executed in this process staged its own child transaction.
        with self._lock:
            return any(child.task_run_id == task_run_id for child in self.children)

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, state={self.state.value})"


class _SubmittedRuns:
    """Counts submitted task runs not yet settled, so that exit can wait for them."""

    def __init__(self) -> None:
        self._pending = 0
        self._changed = threading.Condition()

    def add(self) -> None:
        with self._changed:
            self._pending += 1

    def done(self) -> None:
        with self._changed:
            self._pending -= 1
            self._changed.notify_all()

    def wait(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._pending <= 0)


def stage_finished_run(parent: Transaction, task: Any, state: Any) -> None:
    """Stage a task run that ran in another process, from its final state.

    A completed run (not one reused from the cache) gets a child transaction
    keyed by its cache key holding its hooks; a failed or crashed one rolls
    ``parent`` back, as a failure in this process would.
    """
    if state.is_completed() and state.name != "Cached":
        child = _child_for(parent, state.state_details.cache_key)
        child.task_run_id = state.state_details.task_run_id
        child.stage(state, task.on_rollback_hooks, task.on_commit_hooks)
        if child.commit_mode == CommitMode.EAGER:
            child.commit()
        parent.add_child(child)
    elif state.is_failed() or state.is_crashed():
        parent.rollback()


def _child_for(parent: Transaction, key: str | None) -> Transaction:
    child = Transaction(
        key=key,
        store=RecordStore() if key else None,
        commit_mode=parent.commit_mode,
        isolation_level=parent.isolation_level,
        logger=parent.logger,
    )
    child._parent = parent
    child.state = TransactionState.ACTIVE
    return child


def track_submitted(task: Any, futures: list[Any]) -> None:
    """Make the active transaction (if any) own task runs just submitted in it."""
    txn = get_transaction()
    if txn is None:
        return
    for future in futures:
        txn.watch_submitted(task, future)


def get_transaction() -> Transaction | None:
    """The innermost active transaction, or None."""
    return Transaction.get_active()


def _default_logger() -> logging.Logger | logging.LoggerAdapter:
    from engine.exceptions import MissingContextError
    from engine.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("transactions")


@contextmanager
def transaction(
    key: str | None = None,
    store: TransactionStore | None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Iterator[Transaction]:
    """Open a transaction for the block; it commits when the block ends, rolls back if it raises.

    With a ``key`` the commit writes a record (to ``store``, by default the
    run store's cache records), and a later transaction with that key starts
    committed: check ``txn.is_committed()`` to skip work already done.
    ``overwrite=True`` ignores an existing record.
    """
    if key and store is None:
        store = RecordStore()
    with Transaction(
        key=key,
        store=store,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
    ) as txn:
        yield txn


__all__ = [
    "CommitMode",
    "IsolationLevel",
    "NotSet",
    "RecordStore",
    "Transaction",
    "TransactionState",
    "TransactionStore",
    "get_transaction",
    "stage_finished_run",
    "track_submitted",
    "transaction",
]
