"""Task runners: where submitted task runs execute.

Every runner holds a submitted task run until its upstream futures are final,
so no thread or worker slot is spent waiting. If an upstream did not complete
(and is not wrapped in ``allow_failure``) the run ends Pending/NotReady without
being dispatched. ``ThreadPoolTaskRunner`` is the embedded default; the Celery
runner lives in ``workers/``.
"""

from __future__ import annotations

import contextvars
import os
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.futures import BaseFuture, wait
from engine.proposals import propose_task_run_state
from engine.schemas import TaskRun
from engine.states import Crashed, NotReady, State
from engine.store import get_store

# Run records of a map are built, stored and handed on this many at a time: big
# enough that a round trip carries many, small enough that a chunk in flight
# costs little next to the futures of a large map.
MAP_CHUNK_SIZE = 250


class TaskRunner(ABC):
    """Runs the task runs a flow submits; entered for the length of one flow run."""

    def __init__(self) -> None:
        self._futures: list[BaseFuture[Any]] = []
        self._futures_lock = threading.Lock()

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def duplicate(self) -> TaskRunner:
        """A fresh, unstarted runner with the same options (one per flow run)."""

    @abstractmethod
    def dispatch(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        """Start a task run whose upstreams are all final and completed."""

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait_for_submitted()

    def wait_for_submitted(self) -> None:
        """Block until every run submitted so far is final."""
        with self._futures_lock:
            futures = list(self._futures)
        wait(futures)

    # --- submission --------------------------------------------------------------------------

    def submit(
        self, task: Any, parameters: dict[str, Any], wait_for: Any = None
    ) -> BaseFuture[Any]:
        """Create the task run and return its future; it starts once its upstreams finish."""
        return self.map(task, [parameters], wait_for)[0]

    def map(
        self, task: Any, calls: list[dict[str, Any]], wait_for: Any = None
    ) -> list[BaseFuture[Any]]:
        """Create many task runs (one store write per chunk) and return their futures."""
        from engine.transactions import track_submitted

        context = contextvars.copy_context()
        futures: list[BaseFuture[Any]] = []
        # Chunks bound the peak memory of a huge map: run records are built,
        # stored and handed on a thousand at a time.
        for start in range(0, len(calls), MAP_CHUNK_SIZE):
            chunk = calls[start : start + MAP_CHUNK_SIZE]
            futures.extend(self._submit_chunk(task, chunk, wait_for, context))
        track_submitted(task, futures)
        return futures

    def _submit_chunk(
        self, task: Any, calls: list[dict[str, Any]], wait_for: Any, context: contextvars.Context
    ) -> list[BaseFuture[Any]]:
        from engine.flow_attempts import reusable_runs
        from engine.task_engine import new_task_run

        task_runs = [new_task_run(task, parameters) for parameters in calls]
        # In a later attempt of the flow run, a call that completed before is
        # not run again: its future is that run's, already finished.
        table = reusable_runs()
        if not table:  # a first attempt: nothing to reuse, nothing to look up
            return self._submit_fresh(task, task_runs, calls, wait_for, context)
        reused = [table.get((run.task_key, run.dynamic_key)) for run in task_runs]
        fresh_runs = [run for run, old in zip(task_runs, reused, strict=True) if old is None]
        fresh_calls = [call for call, old in zip(calls, reused, strict=True) if old is None]
        submitted = iter(self._submit_fresh(task, fresh_runs, fresh_calls, wait_for, context))
        return [next(submitted) if old is None else _finished_future(old) for old in reused]

    def _submit_fresh(
        self,
        task: Any,
        task_runs: list[TaskRun],
        calls: list[dict[str, Any]],
        wait_for: Any,
        context: contextvars.Context,
    ) -> list[BaseFuture[Any]]:
        if not task_runs:
            return []
        get_store().create_task_runs(task_runs)
        futures = [self.new_future(task_run) for task_run in task_runs]
        with self._futures_lock:
            self._futures.extend(futures)
        for task_run, parameters, future in zip(task_runs, calls, futures, strict=True):
            self._hold_until_ready(task, task_run, parameters, wait_for, future, context)
        return futures

    def new_future(self, task_run: TaskRun) -> BaseFuture[Any]:
        """The future this runner completes for ``task_run``."""
        return BaseFuture(task_run.id)

    def _hold_until_ready(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        wait_for: Any,
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        from engine.task_engine import upstream_futures

        upstreams = set(upstream_futures(parameters)) | set(upstream_futures(wait_for))

        def release() -> None:
            self._release(task, task_run, parameters, wait_for, future, context)

        gate = Gate(len(upstreams), release)
        one_done = gate.one_done  # one bound method for every upstream, not one each
        for upstream in upstreams:
            upstream.add_done_callback(one_done)
        gate.check()

    def _release(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        wait_for: Any,
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        from engine.task_engine import failed_upstreams

        try:
            failed = failed_upstreams(parameters, wait_for)
            if failed:
                future.set_final_state(mark_not_ready(task_run, failed[0]))
                return
            self.dispatch(task, task_run, parameters, future, context)
        except Exception as exc:  # a runner bug must still finish the future
            future.set_final_state(_mark_crashed(task_run, exc))


def _finished_future(task_run: TaskRun) -> BaseFuture[Any]:
    future: BaseFuture[Any] = BaseFuture(task_run.id)
    future.set_final_state(task_run.state)  # type: ignore[arg-type]
    return future


class Gate:
    """Calls ``release`` once, after ``count`` upstreams have reported done."""

    def __init__(self, count: int, release: Any) -> None:
        self._remaining = count
        self._release = release
        self._lock = threading.Lock()
        self._fired = False

    def one_done(self, _future: Any = None) -> None:
        with self._lock:
            self._remaining -= 1
        self.check()

    def check(self) -> None:
        with self._lock:
            if self._remaining > 0 or self._fired:
                return
            self._fired = True
        self._release()


def mark_not_ready(task_run: TaskRun, upstream: State[Any]) -> State[Any]:
    upstream_id = upstream.state_details.task_run_id
    state = NotReady(
        message=f"Upstream task run '{upstream_id}' did not reach a 'COMPLETED' state."
    )
    return propose_final(task_run, state)


def _mark_crashed(task_run: TaskRun, exc: BaseException) -> State[Any]:
    state = Crashed(message=f"The task runner could not run this task: {exc!r}", data=exc)
    return propose_final(task_run, state)


def propose_final(task_run: TaskRun, state: State[Any]) -> State[Any]:
    """Record a final state the runner decided (not the engine); the state now in effect.

    The store may be gone (Redis lost): the future must still finish.
    """
    return propose_task_run_state(task_run, state, state.is_crashed(), store_may_be_lost=True)


class ThreadPoolTaskRunner(TaskRunner):
    """Runs task runs in a pool of threads in this process (the embedded default)."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        self.max_workers = max_workers or max(32, (os.cpu_count() or 1) * 8)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(max_workers=self.max_workers)

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="celerity-task"
                )
            return self._executor

    def dispatch(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        self._pool().submit(context.copy().run, _run_in_thread, task, task_run, parameters, future)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _run_in_thread(
    task: Any, task_run: TaskRun, parameters: dict[str, Any], future: BaseFuture[Any]
) -> None:
    from engine.task_engine import run_task

    try:
        state = run_task(task, parameters, task_run, return_type="state")
    except BaseException as exc:  # the engine already recorded Crashed; finish the future
        state = get_store().read_task_run(task_run.id).state or _mark_crashed(task_run, exc)
    future.set_final_state(state)


__all__ = ["TaskRunner", "ThreadPoolTaskRunner"]
