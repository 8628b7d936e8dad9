"""Task runners: where submitted task runs execute.

Every runner holds a submitted task run until its upstream futures are final,
so no thread or worker slot is spent waiting. If an upstream did not complete
(and is not wrapped in ``allow_failure``) the run ends Pending/NotReady without
being dispatched. ``ThreadPoolTaskRunner`` is the embedded default;
``ProcessPoolTaskRunner`` runs task runs in a pool of processes of this
machine; the Celery runner lives in ``workers/``.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import multiprocessing
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from engine.config import current_settings
from engine.context import TaskRunContext, serialize_context
from engine.futures import BaseFuture, FutureList, PrefectConcurrentFuture, wait
from engine.proposals import propose_task_run_state
from engine.schemas import RunLog, TaskRun
from engine.states import Cancelled, Crashed, Failed, NotReady, State
from engine.store import get_store
from engine.task_inputs import Upstreams
from engine.utilities.collections import visit_collection

logger = logging.getLogger("celerity.task_runners")

# Run records of a map are built, stored and handed on this many at a time: big
# enough that a round trip carries many, small enough that a chunk in flight
# costs little next to the futures of a large map.
MAP_CHUNK_SIZE = 250


class TaskRunner(ABC):
    """Runs the task runs a flow submits; entered for the length of one flow run."""

    # Runners that must be entered (``with runner:``) before they take work.
    requires_start = False

    def __init__(self) -> None:
        self._futures: list[BaseFuture[Any]] = []
        self._futures_lock = threading.Lock()
        self._started = False

    @property
    def name(self) -> str:
        """The runner's short name: ``threadpool``, ``processpool``, ``celery``."""
        return type(self).__name__.lower().replace("taskrunner", "")

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
        self._started = True
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait_for_submitted()
        finally:
            self._started = False

    def wait_for_submitted(self) -> None:
        """Block until every run submitted so far is final."""
        with self._futures_lock:
            futures = list(self._futures)
        wait(futures)

    def _cancel_unfinished(self) -> None:
        """End Cancelled every submitted run that has not finished (nor will: the pool is gone)."""
        with self._futures_lock:
            unfinished = [future for future in self._futures if not future.done()]
        for future in unfinished:
            try:
                task_run = get_store().read_task_run(future.task_run_id)
            except Exception:  # the store is gone: the future must still finish
                future.set_final_state(Cancelled(message=STOPPED))
                continue
            _cancel(task_run, future)

    def _check_started(self) -> None:
        if self.requires_start and not self._started:
            raise RuntimeError(
                f"Task runner is not started: enter it (`with {type(self).__name__}() as "
                "runner:`) before submitting, or give it to a flow."
            )

    # --- submission --------------------------------------------------------------------------

    def submit(
        self, task: Any, parameters: dict[str, Any], wait_for: Any = None
    ) -> BaseFuture[Any]:
        """Create the task run and return its future; it starts once its upstreams finish."""
        return self.map(task, [parameters], wait_for)[0]

    def map(
        self,
        task: Any,
        parameters: Mapping[str, Any] | list[dict[str, Any]],
        wait_for: Any = None,
    ) -> FutureList[Any]:
        """Create many task runs (one store write per chunk) and return their futures.

        ``parameters`` is either one parameter dict per run, or (as ``Task.map``
        takes them) a dict of iterables and ``unmapped`` values to expand.
        """
        from engine.transactions import track_submitted

        self._check_started()
        calls = _expanded(parameters)
        context = contextvars.copy_context()
        futures: FutureList[Any] = FutureList()
        # Chunks bound the peak memory of a huge map: run records are built,
        # stored and handed on a chunk at a time.
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

        # One walk per call finds its upstreams: the record keeps them as its
        # task inputs (stored with it, in the same write), the gate waits for them.
        upstreams = [Upstreams(parameters, wait_for) for parameters in calls]
        task_runs = [
            new_task_run(task, parameters, task_inputs=found.take_inputs())
            for parameters, found in zip(calls, upstreams, strict=True)
        ]
        # In a later attempt of the flow run, a call that completed before is
        # not run again: its future is that run's, already finished.
        table = reusable_runs()
        if not table:  # a first attempt: nothing to reuse, nothing to look up
            return self._submit_fresh(task, task_runs, calls, upstreams, wait_for, context)
        reused = [table.get((run.task_key, run.dynamic_key)) for run in task_runs]
        fresh = [i for i, old in enumerate(reused) if old is None]
        submitted = iter(
            self._submit_fresh(
                task,
                [task_runs[i] for i in fresh],
                [calls[i] for i in fresh],
                [upstreams[i] for i in fresh],
                wait_for,
                context,
            )
        )
        return [next(submitted) if old is None else _finished_future(old) for old in reused]

    def _submit_fresh(
        self,
        task: Any,
        task_runs: list[TaskRun],
        calls: list[dict[str, Any]],
        upstreams: list[Upstreams],
        wait_for: Any,
        context: contextvars.Context,
    ) -> list[BaseFuture[Any]]:
        if not task_runs:
            return []
        get_store().create_task_runs(task_runs)
        futures = [self.new_future(task_run) for task_run in task_runs]
        with self._futures_lock:
            self._futures.extend(futures)
        for task_run, parameters, found, future in zip(
            task_runs, calls, upstreams, futures, strict=True
        ):
            self._hold_until_ready(task, task_run, parameters, wait_for, found, future, context)
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
        upstreams: Upstreams,
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        def release() -> None:
            self._release(task, task_run, parameters, wait_for, upstreams, future, context)

        gate = Gate(len(upstreams.futures), release)
        one_done = gate.one_done  # one bound method for every upstream, not one each
        for upstream in upstreams.futures:
            upstream.add_done_callback(one_done)
        gate.check()

    def _release(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        wait_for: Any,
        upstreams: Upstreams,
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        if future.done():  # cancelled while it waited for its upstreams
            return
        try:
            if wait_for is not None and _waits_for_itself(wait_for, future):
                deadlock = _deadlock(task_run)
                in_effect = propose_final(task_run, deadlock)
                # The store's answer is a copy without the exception: keep ours.
                future.set_final_state(deadlock if in_effect.id == deadlock.id else in_effect)
                return
            failed = upstreams.failed()
            if failed:
                future.set_final_state(mark_not_ready(task_run, failed[0]))
                return
            self.dispatch(task, task_run, parameters, future, context)
        except Exception as exc:  # a runner bug must still finish the future
            future.set_final_state(_mark_crashed(task_run, exc))


STOPPED = "The task runner was stopped before this run started."


def _cancel(task_run: TaskRun, future: BaseFuture[Any]) -> None:
    future.set_final_state(propose_final(task_run, Cancelled(message=STOPPED)))


def _waits_for_itself(wait_for: Any, future: BaseFuture[Any]) -> bool:
    # ``wait_for`` may be a list the caller appends this very future to after
    # submitting it (a queue of earlier runs): read it again now.
    from engine.task_engine import upstream_futures

    return any(upstream is future for upstream in upstream_futures(wait_for))


def _deadlock(task_run: TaskRun) -> State[Any]:
    error = ValueError(
        f"Task run {task_run.name!r} waits for itself (its own future is in its wait_for): "
        "it would deadlock."
    )
    return Failed(message=str(error), data=error)


def _expanded(parameters: Mapping[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(parameters, Mapping):
        return list(parameters)
    from engine.tasks import expand_map_parameters

    return expand_map_parameters(dict(parameters))


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


def _default_workers(setting: str, fallback: int) -> int:
    """A runner's size from settings when the caller gave none."""
    return getattr(current_settings(), setting, None) or fallback


class ThreadPoolTaskRunner(TaskRunner):
    """Runs task runs in a pool of threads in this process (the embedded default).

    A task that submits tasks and waits for them holds its thread meanwhile;
    when every thread of the pool is taken, a run submitted from inside a task
    run gets a thread of its own, so nested submissions cannot deadlock the pool.

    Example::

        with ThreadPoolTaskRunner(max_workers=4) as runner:
            future = runner.submit(add, {"x": 1, "y": 2})
            future.result()  # 3
    """

    requires_start = True

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__()
        fallback = max(32, (os.cpu_count() or 1) * 8)
        self._max_workers = max_workers or _default_workers("thread_pool_max_workers", fallback)
        self._executor: ThreadPoolExecutor | None = None
        # Runs handed to the pool and not finished yet (queued or running).
        self._busy = 0
        self._busy_lock = threading.Lock()

    @property
    def max_workers(self) -> int:
        """The number of threads of the pool."""
        return self._max_workers

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(max_workers=self._max_workers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThreadPoolTaskRunner) and other._max_workers == self._max_workers

    def __hash__(self) -> int:
        return hash((ThreadPoolTaskRunner, self._max_workers))

    def new_future(self, task_run: TaskRun) -> BaseFuture[Any]:
        return PrefectConcurrentFuture(task_run.id)

    def __enter__(self) -> ThreadPoolTaskRunner:
        super().__enter__()
        self._busy = 0
        self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="celerity-task")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            executor, self._executor = self._executor, None
            if executor is not None:
                executor.shutdown(wait=True)

    def cancel_all(self) -> None:
        """Stop the pool: runs not started yet end Cancelled, running ones are waited for."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._cancel_unfinished()

    def dispatch(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        executor = self._executor
        if executor is None:  # stopped (cancel_all) while this run waited for its upstreams
            _cancel(task_run, future)
            return
        run = functools.partial(
            context.copy().run, _run_in_thread, task, task_run, parameters, future
        )
        with self._busy_lock:
            # The submitting task may be waiting for this run: never queue it
            # behind a pool whose threads are all taken.
            overflow = self._busy >= self._max_workers and _inside_task_run(context)
            if not overflow:
                self._busy += 1
        if overflow:
            threading.Thread(target=run, name="celerity-task-nested", daemon=True).start()
            return
        executor.submit(self._release_slot_after, run)

    def _release_slot_after(self, run: Callable[[], None]) -> None:
        try:
            run()
        finally:
            with self._busy_lock:
                self._busy -= 1


def _inside_task_run(context: contextvars.Context) -> bool:
    # Read from the mapping, not with context.run(): another thread may be
    # inside this same context object (every run of a map shares it).
    return context.get(TaskRunContext._var) is not None


def _run_in_thread(
    task: Any, task_run: TaskRun, parameters: dict[str, Any], future: BaseFuture[Any]
) -> None:
    from engine.task_engine import run_task

    try:
        state = run_task(task, parameters, task_run, return_type="state")
    except BaseException as exc:  # the engine already recorded Crashed; finish the future
        state = get_store().read_task_run(task_run.id).state or _mark_crashed(task_run, exc)
    future.set_final_state(state)


# --- a pool of processes ------------------------------------------------------------------------


class ProcessPoolTaskRunner(TaskRunner):
    """Runs task runs in a pool of spawned processes of this machine.

    For CPU-bound tasks: each run executes in a worker process, with the
    submitting code's run context (flow run, tags, result storage) re-entered
    there. Parameters and return values must be picklable (cloudpickle);
    everything that crosses between the processes is signed and verified.
    ``initializer(*initargs)`` runs once in each worker process.

    Example::

        @flow(task_runner=ProcessPoolTaskRunner(max_workers=4))
        def crunch(numbers):
            return heavy.map(numbers).result()
    """

    requires_start = True

    def __init__(
        self,
        max_workers: int | None = None,
        subprocess_message_processor_factories: Iterable[MessageProcessorFactory] | None = None,
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        super().__init__()
        fallback = multiprocessing.cpu_count()
        self._max_workers = max_workers or _default_workers("process_pool_max_workers", fallback)
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._subprocess_message_processor_factories = tuple(
            subprocess_message_processor_factories or ()
        )
        self._processors: list[MessageProcessor] = []
        self._executor: ProcessPoolExecutor | None = None
        # Answers are unpacked (and records imported) off the pool's own thread.
        self._finisher: ThreadPoolExecutor | None = None

    @property
    def subprocess_message_processor_factories(self) -> tuple[MessageProcessorFactory, ...]:
        """Factories of processors that see each log line a worker process sends back.

        A processor is called as ``processor("log", payload)`` with the log
        line as a dict, and returns ``(message_type, payload)`` to keep it
        (changed or not) or None to drop it. Each factory is called once per
        entry of the runner.
        """
        return getattr(self, "_subprocess_message_processor_factories", ())

    @subprocess_message_processor_factories.setter
    def subprocess_message_processor_factories(
        self, factories: Iterable[MessageProcessorFactory] | None
    ) -> None:
        if self._started:
            raise RuntimeError(
                "Cannot configure subprocess message processor factories while task runner "
                "is started."
            )
        self._subprocess_message_processor_factories = tuple(factories or ())

    def set_subprocess_message_processor_factories(
        self, factories: Iterable[MessageProcessorFactory] | None
    ) -> None:
        """Set ``subprocess_message_processor_factories`` (before the runner starts)."""
        self.subprocess_message_processor_factories = factories

    @property
    def max_workers(self) -> int:
        """The number of worker processes."""
        return self._max_workers

    def duplicate(self) -> ProcessPoolTaskRunner:
        twin = type(self)(max_workers=self._max_workers)
        # Set after construction, so that subclasses with narrower __init__ duplicate too.
        twin._initializer, twin._initargs = self._initializer, self._initargs
        twin.subprocess_message_processor_factories = self.subprocess_message_processor_factories
        return twin

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessPoolTaskRunner) and other._max_workers == self._max_workers

    def __hash__(self) -> int:
        return hash((ProcessPoolTaskRunner, self._max_workers))

    def __enter__(self) -> ProcessPoolTaskRunner:
        super().__enter__()
        self._executor = ProcessPoolExecutor(
            self._max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=self._initializer,
            initargs=self._initargs,
        )
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix="celerity-process-answers")
        self._processors = _start_processors(self.subprocess_message_processor_factories)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self.cancel_all()

    def cancel_all(self) -> None:
        """Stop the pool: runs not started yet end Cancelled, running ones are waited for."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        finisher, self._finisher = self._finisher, None
        if finisher is not None:
            finisher.shutdown(wait=True)
        self._cancel_unfinished()

    def new_future(self, task_run: TaskRun) -> BaseFuture[Any]:
        return PrefectConcurrentFuture(task_run.id)

    def dispatch(
        self,
        task: Any,
        task_run: TaskRun,
        parameters: dict[str, Any],
        future: BaseFuture[Any],
        context: contextvars.Context,
    ) -> None:
        from engine.process_pool import pack_job, run_job

        executor, finisher = self._executor, self._finisher
        if executor is None or finisher is None:  # stopped while it waited for its upstreams
            _cancel(task_run, future)
            return
        # Upstreams are final here: their states (which carry their values)
        # travel instead of the futures, which belong to this process.
        serialized = context.copy().run(serialize_context)
        job = pack_job(task, task_run, _futures_to_states(parameters), serialized)
        running = executor.submit(run_job, job)
        running.add_done_callback(
            lambda done: finisher.submit(self._finish, done, task_run, future)
        )

    def _finish(self, done: Future[bytes], task_run: TaskRun, future: BaseFuture[Any]) -> None:
        """Complete ``future`` from a pool process's answer (or from how the process failed)."""
        from engine.process_pool import unpack_answer

        try:
            if done.cancelled():
                state = propose_final(task_run, Cancelled(message=STOPPED))
            else:
                state = unpack_answer(done.result(), get_store(), self._process_logs)
        except BaseException as exc:  # a dead process, an unpicklable value, a bad signature
            state = _mark_crashed(task_run, exc)
        future.set_final_state(state)

    def _process_logs(self, logs: list[RunLog]) -> list[RunLog]:
        if not self._processors:
            return logs
        kept = (_processed(log, self._processors) for log in logs)
        return [log for log in kept if log is not None]


def _futures_to_states(parameters: dict[str, Any]) -> dict[str, Any]:
    def visit(item: Any) -> Any:
        return item.state if isinstance(item, BaseFuture) else item

    resolved: dict[str, Any] = visit_collection(parameters, visit)
    return resolved


# What a worker process sends back, as message processors see it.
LOG_MESSAGE = "log"
MessageProcessor = Callable[[str, Any], "tuple[str, Any] | None"]
MessageProcessorFactory = Callable[[], MessageProcessor]


def _start_processors(factories: Iterable[MessageProcessorFactory]) -> list[MessageProcessor]:
    processors = []
    for factory in factories:
        try:
            processors.append(factory())
        except Exception:  # one bad factory should not stop the runner
            logger.exception("Ignoring message processor factory %r: it raised.", factory)
    return processors


def _processed(log: RunLog, processors: list[MessageProcessor]) -> RunLog | None:
    """``log`` after every processor, or None when one drops it (or fails)."""
    kind: str = LOG_MESSAGE
    payload: Any = log.model_dump(mode="json")
    for processor in processors:
        try:
            message = processor(kind, payload)
        except Exception:
            logger.exception("Dropping a log line: message processor %r raised.", processor)
            return None
        if message is None:
            return None
        kind, payload = message
    return RunLog.model_validate(payload) if kind == LOG_MESSAGE else None


# Prefect 2's name for the thread pool runner.
ConcurrentTaskRunner = ThreadPoolTaskRunner


def __getattr__(name: str) -> Any:
    # Prefect's runner for task workers is our Celery runner; imported only
    # when asked for, so that importing the engine never imports Celery.
    if name == "PrefectTaskRunner":
        import importlib

        from engine.runner_selection import CELERY_RUNNER_PATH

        module_name, _, attr = CELERY_RUNNER_PATH.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TaskRunner", "ThreadPoolTaskRunner", "ProcessPoolTaskRunner", "ConcurrentTaskRunner"]
