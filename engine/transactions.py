"""Transactions: work that commits or rolls back as one unit (the seed API's model).

A ``transaction()`` block groups the task runs inside it. A task run that
completes in the block *stages* its result and its ``on_commit`` /
``on_rollback`` hooks on a child transaction; when the block ends normally the
transaction commits (commit hooks run, records are written), and when it
raises it rolls back (rollback hooks of the completed task runs run, newest
first, and nothing is recorded). Example::

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

Async code uses ``atransaction()`` / ``AsyncTransaction``, whose ``commit``,
``rollback`` and ``read`` are coroutines.

A transaction with a ``key`` keeps its record in a ``ResultStore``
(``engine.results``): by default the run store's records, which task caching
shares. ``IsolationLevel.SERIALIZABLE`` takes the store's lock on the key for
the whole block (see ``engine.locking``).

What differs from the seed API (see docs/architecture.md, "Transactions"):

- A rollback hook that raises is logged and the remaining hooks still run
  (the seed API stops at the first failing hook).
- A block waits, before it commits or rolls back, for the task runs submitted
  inside it, so their hooks always belong to it.
- A task run that fails *after its retries* rolls its transaction back (the
  seed API also rolls back when an attempt that will be retried fails).
- Without a ``store``, a keyed transaction's store has this process's default
  lock manager, so ``SERIALIZABLE`` works without configuration (in memory
  when embedded, in Redis on a fleet); the seed API raises there.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from enum import Enum
from typing import Any, ClassVar

from engine.exceptions import ConfigurationError
from engine.filesystems import NullFileSystem
from engine.results import ResultStore, default_holder, get_result_store

Hook = Callable[[Any], Any]


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

# The one innermost transaction of this context, whichever kind it is.
_active: ContextVar[BaseTransaction | None] = ContextVar("celerity_transaction", default=None)


def RecordStore() -> ResultStore:  # noqa: N802 - kept for callers of the former class
    """The store of keyed records when none is given (``engine.results.get_result_store``)."""
    return get_result_store()


class BaseTransaction:
    """What sync and async transactions share: values, state, children, hooks.

    Enter a ``Transaction`` with ``with`` or an ``AsyncTransaction`` with
    ``async with``; ``get_transaction()`` returns the innermost active one.
    """

    _var: ClassVar[ContextVar[BaseTransaction | None]] = _active

    def __init__(
        self,
        key: str | None = None,
        store: ResultStore | None = None,
        commit_mode: CommitMode | None = None,
        isolation_level: IsolationLevel | None = None,
        state: TransactionState = TransactionState.PENDING,
        overwrite: bool = False,
        write_on_commit: bool = True,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.key = key
        self.store = _without_null_metadata(store)
        self.commit_mode = commit_mode
        self.isolation_level = isolation_level
        self.state = TransactionState(state)
        self.overwrite = overwrite
        self.write_on_commit = write_on_commit
        self.logger = logger or _default_logger()
        self.children: list[BaseTransaction] = []
        self.on_commit_hooks: list[Hook] = []
        self.on_rollback_hooks: list[Hook] = []
        self.task_run_id: uuid.UUID | None = None  # set when a task run owns it
        self._values: dict[str, Any] = {}
        self._staged_value: Any = None
        self._parent: BaseTransaction | None = None
        self._token: Token[BaseTransaction | None] | None = None
        self._lock = threading.RLock()
        self._submitted = _SubmittedRuns()
        self._holder: str | None = None  # who holds the key's lock (SERIALIZABLE)

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

    @property
    def lock_holder(self) -> str | None:
        """Who holds this transaction's key lock (SERIALIZABLE), while it holds it."""
        return self._holder

    def get_parent(self) -> BaseTransaction | None:
        """The transaction this one was entered inside, if any."""
        return self._parent

    @classmethod
    def get_active(cls) -> BaseTransaction | None:
        """The innermost transaction active in this context, or None."""
        return _active.get()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, BaseTransaction)
        return self._identity() == other._identity()

    def _identity(self) -> tuple[Any, ...]:
        return (
            self.key,
            self.store,
            self.commit_mode,
            self.isolation_level,
            self.state,
            self.overwrite,
            self.write_on_commit,
        )

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, state={self.state.value})"

    # --- entering and leaving -----------------------------------------------------------

    def _enter(self) -> None:
        if self._token is not None:
            raise RuntimeError("This transaction is already entered; create a new one to nest.")
        parent = get_transaction()
        self._parent = parent
        self._inherit(parent)
        self.state = TransactionState.ACTIVE
        self._check_isolation()

    def _inherit(self, parent: BaseTransaction | None) -> None:
        if self.commit_mode is None:
            self.commit_mode = parent.commit_mode if parent else CommitMode.LAZY
        if self.isolation_level is None:
            self.isolation_level = parent.isolation_level if parent else None
        self.isolation_level = IsolationLevel(self.isolation_level or IsolationLevel.READ_COMMITTED)
        self.commit_mode = CommitMode(self.commit_mode)

    def _check_isolation(self) -> None:
        if self.store is None or not self.key:
            return
        if not self.store.supports_isolation_level(self.isolation_level):
            raise ConfigurationError(
                f"Isolation level {IsolationLevel(self.isolation_level).value} is not supported "
                "by provided configuration. Give the transaction a store with a lock manager: "
                "ResultStore(lock_manager=...)."
            )

    def _wants_lock(self) -> bool:
        return bool(
            self.key
            and self.store is not None
            and self.isolation_level == IsolationLevel.SERIALIZABLE
        )

    def _activate(self) -> None:
        self._token = _active.set(self)

    def _wait_for_submitted(self, exc_type: Any) -> None:
        # Interruptions (KeyboardInterrupt...) must not wait for submitted runs.
        if exc_type is None or issubclass(exc_type, Exception):
            self._submitted.wait()

    def _deactivate(self) -> None:
        parent = self._parent
        if parent is not None:
            parent.add_child(self)
        if self._token is not None:
            try:
                _active.reset(self._token)
            except ValueError:  # left in another context than entered (an async fixture)
                _active.set(parent)
            self._token = None
        self._release_key_lock()

    def _release_key_lock(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None or self.store is None or not self.key:
            return
        if self.store.is_lock_holder(self.key, holder):
            self.store.release_lock(self.key, holder=holder)

    def _finish_action(self) -> str | None:
        """What leaving without an error does: "commit", "rollback" or nothing (None)."""
        if self.commit_mode == CommitMode.EAGER:
            return "commit"
        if self._parent is not None:
            return None  # the parent commits or rolls back this one with itself
        if self.commit_mode == CommitMode.OFF:
            return "rollback"  # nobody committed it: undo (a no-op once committed)
        return "commit"

    # --- staging and children ----------------------------------------------------------

    def add_child(self, transaction: BaseTransaction) -> None:
        """Make ``transaction`` commit and roll back with this one.

        A child added after this transaction rolled back is rolled back at once,
        and one added after it committed is committed at once.
        """
        with self._lock:
            if not any(child is transaction for child in self.children):
                self.children.append(transaction)
            state = self.state
        if state == TransactionState.ROLLED_BACK:
            _settle(transaction.rollback())
        elif state == TransactionState.COMMITTED:
            _settle(transaction.commit())

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

    def _should_write(self) -> bool:
        return self.store is not None and bool(self.key) and self.write_on_commit

    def _log_hook_start(self, hook: Hook, kind: str) -> str:
        name = getattr(hook, "__name__", repr(hook))
        self.logger.info("Running %s hook %r", kind, name)
        return name

    def _log_hook_error(self, name: str, kind: str) -> None:
        self.logger.exception("An error was encountered while running %s hook %r", kind, name)

    def _log_hook_done(self, name: str, kind: str) -> None:
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

    # Implemented by the sync and async transactions (coroutines in the async one).
    def commit(self) -> Any:
        raise NotImplementedError

    def rollback(self) -> Any:
        raise NotImplementedError


def _settle(outcome: Any) -> None:
    """Finish a child's commit or rollback that an async child returned as a coroutine."""
    if inspect.iscoroutine(outcome):
        from engine.utilities.asyncutils import run_coro_sync

        run_coro_sync(outcome)


def _without_null_metadata(store: ResultStore | None) -> ResultStore | None:
    # A NullFileSystem for metadata would hide every record: keep them with the results.
    if store is not None and isinstance(store.metadata_storage, NullFileSystem):
        return store.model_copy(update={"metadata_storage": None})
    return store


class Transaction(BaseTransaction):
    """A transaction for sync code (``with Transaction(...)`` or ``transaction()``)."""

    def __enter__(self) -> Transaction:
        self._enter()
        self.begin()
        self._activate()
        return self

    def begin(self) -> None:
        """Take the key's lock (SERIALIZABLE); a key with a record starts COMMITTED."""
        if self._wants_lock():
            assert self.store is not None and self.key
            self._holder = default_holder()
            self.store.acquire_lock(self.key, holder=self._holder)
        if not self.overwrite and self.store is not None and self.key:
            if self.store.exists(self.key):
                self.state = TransactionState.COMMITTED

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._token is None:
            raise RuntimeError("Transaction exited without being entered.")
        self._wait_for_submitted(exc_type)
        try:
            if exc_type is not None:
                self.rollback()
            elif (action := self._finish_action()) is not None:
                getattr(self, action)()
        finally:
            self._deactivate()
        if self._parent is not None and self.is_rolled_back():
            self._parent.rollback()  # a child that rolled back takes its parent with it

    def read(self) -> Any:
        """The record committed under this transaction's key (a ``ResultRecord``), or None."""
        if self.store is not None and self.key:
            return self.store.read(self.key, holder=self._holder)
        return None

    def commit(self) -> bool:
        """Commit children, run commit hooks, write the record; False if already finished.

        A commit hook or record write that raises rolls the transaction back.
        """
        with self._lock:
            if self.state in _FINISHED:
                return False
            try:
                for child in list(self.children):
                    _settle(child.commit())
                for hook in self.on_commit_hooks:
                    self.run_hook(hook, "commit")
                if self._should_write():
                    assert self.store is not None
                    self.store.write(obj=self._staged_value, key=self.key, holder=self._holder)
            except Exception:
                self.logger.exception("An error was encountered while committing %r", self.key)
                self.rollback()
                return False
            self.state = TransactionState.COMMITTED
        self._release_key_lock()
        return True

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
                try:
                    self.run_hook(hook, "rollback")
                except Exception:
                    pass  # run_hook logged it; the other compensations must still run
            for child in reversed(list(self.children)):
                _settle(child.rollback())
        self._release_key_lock()
        return True

    def run_hook(self, hook: Hook, kind: str) -> None:
        """Call ``hook(self)`` with log lines around it; re-raises what the hook raises."""
        name = self._log_hook_start(hook, kind)
        try:
            _settle(hook(self))
        except Exception:
            self._log_hook_error(name, kind)
            raise
        self._log_hook_done(name, kind)


class AsyncTransaction(BaseTransaction):
    """A transaction for coroutines (``async with AsyncTransaction(...)`` or ``atransaction()``).

    ``commit``, ``rollback`` and ``read`` are coroutines, and waiting for a
    SERIALIZABLE lock lets the event loop's other tasks run.
    """

    async def __aenter__(self) -> AsyncTransaction:
        self._enter()
        await self.begin()
        self._activate()
        return self

    async def begin(self) -> None:
        """Take the key's lock (SERIALIZABLE); a key with a record starts COMMITTED."""
        if self._wants_lock():
            assert self.store is not None and self.key
            self._holder = default_holder()
            await self.store.aacquire_lock(self.key, holder=self._holder)
        if not self.overwrite and self.store is not None and self.key:
            if await self.store.aexists(self.key):
                self.state = TransactionState.COMMITTED

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._token is None:
            raise RuntimeError("Transaction exited without being entered.")
        if self._submitted.pending:  # waiting blocks: keep it off the event loop
            await asyncio.to_thread(self._wait_for_submitted, exc_type)
        try:
            if exc_type is not None:
                await self.rollback()
            elif (action := self._finish_action()) is not None:
                await getattr(self, action)()
        finally:
            self._deactivate()
        if self._parent is not None and self.is_rolled_back():
            await _finish(self._parent.rollback())

    async def read(self) -> Any:
        """The record committed under this transaction's key (a ``ResultRecord``), or None."""
        if self.store is not None and self.key:
            return await self.store.aread(self.key, holder=self._holder)
        return None

    async def commit(self) -> bool:
        """``Transaction.commit`` for coroutines."""
        if self.state in _FINISHED:
            return False
        try:
            for child in list(self.children):
                await _finish(child.commit())
            for hook in self.on_commit_hooks:
                await self.run_hook(hook, "commit")
            if self._should_write():
                assert self.store is not None
                await self.store.awrite(obj=self._staged_value, key=self.key, holder=self._holder)
        except Exception:
            self.logger.exception("An error was encountered while committing %r", self.key)
            await self.rollback()
            return False
        self.state = TransactionState.COMMITTED
        self._release_key_lock()
        return True

    async def rollback(self) -> bool:
        """``Transaction.rollback`` for coroutines."""
        if self.state in _FINISHED:
            return False
        self.state = TransactionState.ROLLED_BACK
        for hook in reversed(self.on_rollback_hooks):
            try:
                await self.run_hook(hook, "rollback")
            except Exception:
                pass  # run_hook logged it; the other compensations must still run
        for child in reversed(list(self.children)):
            await _finish(child.rollback())
        self._release_key_lock()
        return True

    async def run_hook(self, hook: Hook, kind: str) -> None:
        """Call ``hook(self)`` (awaiting it if it is async); re-raises what it raises."""
        name = self._log_hook_start(hook, kind)
        try:
            await _finish(hook(self))
        except Exception:
            self._log_hook_error(name, kind)
            raise
        self._log_hook_done(name, kind)


async def _finish(outcome: Any) -> Any:
    return await outcome if inspect.isawaitable(outcome) else outcome


class _SubmittedRuns:
    """Counts submitted task runs not yet settled, so that exit can wait for them."""

    def __init__(self) -> None:
        self._pending = 0
        self._changed = threading.Condition()

    @property
    def pending(self) -> int:
        """How many submitted runs are not settled yet."""
        return self._pending

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


def stage_finished_run(parent: BaseTransaction, task: Any, state: Any) -> None:
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
        _settle(parent.rollback())


def _child_for(parent: BaseTransaction, key: str | None) -> Transaction:
    child = Transaction(
        key=key,
        store=get_result_store() if key else None,
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


def get_transaction() -> BaseTransaction | None:
    """The innermost active transaction, or None."""
    return _active.get()


def _default_logger() -> logging.Logger | logging.LoggerAdapter:
    from engine.exceptions import MissingContextError
    from engine.logging import get_logger, get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("transactions")


def _options(key: str | None, store: ResultStore | None, **options: Any) -> dict[str, Any]:
    # Without a key nothing is recorded, so no store is needed.
    if key and store is None:
        store = get_result_store()
    return {"key": key, "store": store, **options}


@contextmanager
def transaction(
    key: str | None = None,
    store: ResultStore | None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Iterator[Transaction]:
    """Open a transaction for the block; it commits when the block ends, rolls back if it raises.

    With a ``key`` the commit writes a record (to ``store``, by default the
    run store's records), and a later transaction with that key starts
    committed: check ``txn.is_committed()`` to skip work already done.
    ``overwrite=True`` ignores an existing record.
    """
    options = _options(
        key,
        store,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
    )
    with Transaction(**options) as txn:
        yield txn


@asynccontextmanager
async def atransaction(
    key: str | None = None,
    store: ResultStore | None = None,
    commit_mode: CommitMode | None = None,
    isolation_level: IsolationLevel | None = None,
    overwrite: bool = False,
    write_on_commit: bool = True,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> AsyncIterator[AsyncTransaction]:
    """``transaction()`` for coroutines: ``async with atransaction(key=...) as txn``."""
    options = _options(
        key,
        store,
        commit_mode=commit_mode,
        isolation_level=isolation_level,
        overwrite=overwrite,
        write_on_commit=write_on_commit,
        logger=logger,
    )
    async with AsyncTransaction(**options) as txn:
        yield txn


__all__ = [
    "AsyncTransaction",
    "BaseTransaction",
    "CommitMode",
    "IsolationLevel",
    "NotSet",
    "RecordStore",
    "Transaction",
    "TransactionState",
    "atransaction",
    "get_transaction",
    "stage_finished_run",
    "track_submitted",
    "transaction",
]
