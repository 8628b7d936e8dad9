"""Loggers: ``get_logger`` for library code, ``get_run_logger`` for run code.

Celerity's loggers live under ``celerity``; run loggers are
``celerity.flow_runs`` and ``celerity.task_runs``. Ported Prefect code that
asks ``get_logger`` for a ``prefect...`` name gets the matching ``celerity``
logger, so that ``get_logger("prefect.flow_runs")`` is the flow run logger.
"""

from __future__ import annotations

import builtins
import contextvars
import io
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from engine.exceptions import MissingContextError
from engine.logging.configuration import ensure_logging_setup

ROOT = "celerity"
PREFECT_ROOT = "prefect"
FLOW_RUN_LOGGER = f"{ROOT}.flow_runs"
TASK_RUN_LOGGER = f"{ROOT}.task_runs"
UNKNOWN = "<unknown>"


def logger_name(name: str | None) -> str:
    """The full name of ``get_logger(name)``: under ``celerity``, a ``prefect`` root read as it."""
    if not name or name in (ROOT, PREFECT_ROOT):
        return ROOT
    for root in (ROOT, PREFECT_ROOT):
        if name.startswith(f"{root}."):
            return f"{ROOT}.{name[len(root) + 1 :]}"
    return f"{ROOT}.{name}"


def get_logger(name: str | None = None) -> logging.Logger:
    """A stdlib logger under the ``celerity`` root (``celerity.<name>``)."""
    ensure_logging_setup()
    return logging.getLogger(logger_name(name))


class RunLoggerAdapter(logging.LoggerAdapter):
    """Adds the run's ids and names (``extra``) to every record; Prefect's ``PrefectLogAdapter``."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs

    def getChild(  # noqa: N802 - the stdlib's spelling
        self, suffix: str, extra: Mapping[str, Any] | None = None
    ) -> RunLoggerAdapter:
        """An adapter on the child logger ``suffix``, with ``extra`` added to this one's."""
        return RunLoggerAdapter(
            self.logger.getChild(suffix), {**(self.extra or {}), **(extra or {})}
        )


PrefectLogAdapter = RunLoggerAdapter


def flow_run_logger(
    flow_run: Any = None, flow: Any = None, *, flow_run_id: Any = None, **kwargs: Any
) -> RunLoggerAdapter:
    """The flow run logger for ``flow_run`` (or a bare ``flow_run_id``); ``kwargs`` add to extra.

    Raises ValueError when neither is given.
    """
    if flow_run is None and flow_run_id is None:
        raise ValueError("Either 'flow_run' or 'flow_run_id' must be provided.")
    extra = {
        "flow_run_name": getattr(flow_run, "name", None) or UNKNOWN,
        "flow_run_id": str(flow_run.id if flow_run is not None else flow_run_id),
        "flow_name": getattr(flow, "name", None) or UNKNOWN,
        # Celerity has no deployments; the key is there for formats that name it.
        "deployment_name": None,
    }
    return RunLoggerAdapter(get_logger(FLOW_RUN_LOGGER), {**extra, **kwargs})


def task_run_logger(
    task_run: Any, task: Any = None, flow_run: Any = None, flow: Any = None, **kwargs: Any
) -> RunLoggerAdapter:
    """The task run logger for ``task_run``; the flow run and flow default to the current ones."""
    from engine.context import FlowRunContext

    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None:
        flow_run = flow_run or getattr(flow_ctx, "flow_run", None)
        flow = flow or getattr(flow_ctx, "flow", None)
    flow_run_id = getattr(task_run, "flow_run_id", None)
    extra = {
        "task_run_id": str(task_run.id),
        "flow_run_id": str(flow_run_id) if flow_run_id is not None else UNKNOWN,
        "task_run_name": task_run.name,
        "task_name": getattr(task, "name", None) or UNKNOWN,
        "flow_run_name": getattr(flow_run, "name", None) or UNKNOWN,
        "flow_name": getattr(flow, "name", None) or UNKNOWN,
    }
    return RunLoggerAdapter(get_logger(TASK_RUN_LOGGER), {**extra, **kwargs})


def get_run_logger(context: Any = None, **kwargs: Any) -> logging.Logger | logging.LoggerAdapter:
    """A logger whose records carry the current run's ids and are kept in the run store.

    ``context`` picks a run context other than the current one. Raises
    MissingContextError outside a flow or task run, unless the run loggers
    are disabled (``disable_run_logger``), where a silent logger is returned;
    TypeError for a ``context`` that is not a run context.
    """
    from engine.context import FlowRunContext, TaskRunContext

    if context is not None and not isinstance(context, (FlowRunContext, TaskRunContext)):
        raise TypeError(f"Received unexpected type {type(context).__name__!r} for context.")
    task_ctx = context if context is not None else TaskRunContext.get()
    task_ctx = task_ctx if isinstance(task_ctx, TaskRunContext) else None
    flow_ctx = context if isinstance(context, FlowRunContext) else FlowRunContext.get()
    if task_ctx is not None:
        flow_run = getattr(flow_ctx, "flow_run", None)
        flow = getattr(flow_ctx, "flow", None)
        return task_run_logger(task_ctx.task_run, task_ctx.task, flow_run, flow, **kwargs)
    if flow_ctx is not None:
        flow_run = getattr(flow_ctx, "flow_run", None)
        flow = getattr(flow_ctx, "flow", None)
        flow_run_id = getattr(flow_run, "id", None) or UNKNOWN
        return flow_run_logger(flow_run, flow, flow_run_id=flow_run_id, **kwargs)
    if _run_loggers_disabled():
        return _silent_logger()
    raise MissingContextError("There is no active flow or task run context.")


def _run_loggers_disabled() -> bool:
    return all(get_logger(name).disabled for name in (FLOW_RUN_LOGGER, TASK_RUN_LOGGER))


def _silent_logger() -> logging.Logger:
    logger = logging.getLogger(f"{ROOT}.null")
    logger.disabled = True
    return logger


@contextmanager
def disable_logger(name: str) -> Iterator[None]:
    """Inside the block the logger ``name`` (a stdlib name, as given) drops every record."""
    logger = logging.getLogger(name)
    was_disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = was_disabled


@contextmanager
def disable_run_logger() -> Iterator[None]:
    """Disable the flow and task run loggers inside the block (``.disabled``), process-wide.

    For calling task and flow functions in tests: ``get_run_logger()`` there
    returns a silent logger instead of raising MissingContextError.
    """
    with disable_logger(FLOW_RUN_LOGGER), disable_logger(TASK_RUN_LOGGER):
        yield


class LogEavesdropper(logging.Handler):
    """Collects the records of one logger (and its children) at ``level`` or above in a block.

    Example::

        with LogEavesdropper("my_logger", level=logging.INFO) as eavesdropper:
            logging.getLogger("my_logger").info("Hello")
        eavesdropper.text()  # "[INFO]: Hello"
    """

    def __init__(self, eavesdrop_on: str, level: int = logging.NOTSET) -> None:
        super().__init__(level=level)
        self.eavesdrop_on = eavesdrop_on
        self._lines: list[str] = []
        self._previous_level = logging.NOTSET

    def __enter__(self) -> LogEavesdropper:
        logger = logging.getLogger(self.eavesdrop_on)
        # The logger must let the records through for the handler to see them.
        self._previous_level = logger.level
        logger.setLevel(self.level)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger(self.eavesdrop_on)
        logger.removeHandler(self)
        logger.setLevel(self._previous_level)

    def emit(self, record: logging.LogRecord) -> None:
        self._lines.append(f"[{record.levelname}]: {record.getMessage()}")

    def text(self) -> str:
        """The collected records, one ``[LEVEL]: message`` per line."""
        return "\n".join(self._lines)


# --- log_prints --------------------------------------------------------------------

_print_to_log: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "log_prints", default=None
)
_original_print = builtins.print


def _log_prints_wanted() -> bool:
    wanted = _print_to_log.get()
    if wanted is not None:
        return wanted
    # No engine said: follow the innermost run context's log_prints, as Prefect does.
    from engine.context import FlowRunContext, TaskRunContext

    ctx = TaskRunContext.get() or FlowRunContext.get()
    return bool(getattr(ctx, "log_prints", False))


def _print_as_log(*args: Any, **kwargs: Any) -> None:
    # Only prints to stdout or stderr inside a run with log_prints on become log
    # records (as in Prefect); prints to files, or outside such runs, behave as usual.
    target = kwargs.get("file")
    if target not in (None, sys.stdout, sys.stderr) or not _log_prints_wanted():
        _original_print(*args, **kwargs)
        return
    buffer = io.StringIO()
    _original_print(*args, **{**kwargs, "file": buffer})
    try:
        get_run_logger().info(buffer.getvalue().rstrip("\n"))
    except MissingContextError:
        _original_print(*args, **kwargs)


@contextmanager
def patch_print(enabled: bool | None = None) -> Iterator[None]:
    """Inside the block, ``print`` to stdout or stderr goes to the run logger when wanted.

    ``enabled`` None follows the current run context's ``log_prints``.
    """
    # Replacing builtins.print once for the process is what makes prints in any
    # module visible; the contextvar keeps the effect to this run's threads.
    if builtins.print is not _print_as_log:
        builtins.print = _print_as_log
    token = _print_to_log.set(enabled)
    try:
        yield
    finally:
        _print_to_log.reset(token)
