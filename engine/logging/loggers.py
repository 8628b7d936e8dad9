"""Loggers: ``get_logger`` for library code, ``get_run_logger`` for run code."""

from __future__ import annotations

import builtins
import contextvars
import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.exceptions import MissingContextError
from engine.logging.handlers import ConsoleFormatter, RunStoreHandler

ROOT = "celerity"
FLOW_RUN_LOGGER = f"{ROOT}.flow_runs"
TASK_RUN_LOGGER = f"{ROOT}.task_runs"

_configured = False
_run_logger_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "run_logger_disabled", default=False
)


def setup_logging() -> None:
    """Attach the console and run-store handlers once per process."""
    global _configured
    if _configured:
        return
    _configured = True
    root = logging.getLogger(ROOT)
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(
        ConsoleFormatter("%(asctime)s | %(levelname)-7s | %(run_label)s%(message)s", "%H:%M:%S")
    )
    root.addHandler(console)
    store_handler = RunStoreHandler()
    logging.getLogger(FLOW_RUN_LOGGER).addHandler(store_handler)
    logging.getLogger(TASK_RUN_LOGGER).addHandler(store_handler)


def get_logger(name: str | None = None) -> logging.Logger:
    """A stdlib logger under the ``celerity`` root (``celerity.<name>``)."""
    setup_logging()
    if not name:
        return logging.getLogger(ROOT)
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


class RunLoggerAdapter(logging.LoggerAdapter):
    """Adds the run's ids and names to every record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


def get_run_logger(context: Any = None, **extra: Any) -> logging.LoggerAdapter:
    """A logger whose records carry the current run's ids and are kept in the run store.

    Raises MissingContextError outside a flow or task run (unless run loggers
    are disabled with ``disable_run_logger``, where a silent logger is returned).
    """
    from engine.context import FlowRunContext, TaskRunContext

    task_ctx = context if isinstance(context, TaskRunContext) else TaskRunContext.get()
    flow_ctx = context if isinstance(context, FlowRunContext) else FlowRunContext.get()
    if context is not None and not isinstance(context, TaskRunContext):
        task_ctx = None
    if task_ctx is not None:
        return _adapter(TASK_RUN_LOGGER, {**_task_extra(task_ctx, flow_ctx), **extra})
    if flow_ctx is not None:
        return _adapter(FLOW_RUN_LOGGER, {**_flow_extra(flow_ctx), **extra})
    if _run_logger_disabled.get():
        return _adapter(f"{ROOT}.null", extra)
    raise MissingContextError("There is no active flow or task run context.")


def _adapter(name: str, extra: dict[str, Any]) -> logging.LoggerAdapter:
    logger = get_logger(name)
    if _run_logger_disabled.get():
        logger = logging.getLogger(f"{ROOT}.null")
        logger.disabled = True
    return RunLoggerAdapter(logger, extra)


def _flow_extra(flow_ctx: Any) -> dict[str, Any]:
    flow_run = flow_ctx.flow_run
    flow_name = getattr(flow_ctx.flow, "name", None) or flow_run.flow_name
    return {"flow_run_id": flow_run.id, "flow_run_name": flow_run.name, "flow_name": flow_name}


def _task_extra(task_ctx: Any, flow_ctx: Any) -> dict[str, Any]:
    task_run = task_ctx.task_run
    extra = {
        "task_run_id": task_run.id,
        "task_run_name": task_run.name,
        "task_name": getattr(task_ctx.task, "name", None),
        "flow_run_id": task_run.flow_run_id,
    }
    if flow_ctx is not None:
        extra["flow_run_name"] = flow_ctx.flow_run.name
        extra["flow_name"] = getattr(flow_ctx.flow, "name", None)
    return extra


@contextmanager
def disable_run_logger() -> Iterator[None]:
    """Silence run loggers inside this block (for calling task functions in tests)."""
    token = _run_logger_disabled.set(True)
    try:
        yield
    finally:
        _run_logger_disabled.reset(token)


# --- log_prints --------------------------------------------------------------------

_print_to_log: contextvars.ContextVar[bool] = contextvars.ContextVar("log_prints", default=False)
_original_print = builtins.print


def _print_as_log(*args: Any, **kwargs: Any) -> None:
    # Only prints to stdout or stderr inside a run with log_prints on become log
    # records (as in Prefect); prints to files, or outside such runs, behave as usual.
    target = kwargs.get("file")
    if not _print_to_log.get() or target not in (None, sys.stdout, sys.stderr):
        _original_print(*args, **kwargs)
        return
    buffer = io.StringIO()
    _original_print(*args, **{**kwargs, "file": buffer})
    try:
        get_run_logger().info(buffer.getvalue().rstrip("\n"))
    except MissingContextError:
        _original_print(*args, **kwargs)


@contextmanager
def patch_print(enabled: bool) -> Iterator[None]:
    """Inside the block, ``print`` to stdout or stderr goes to the run logger when ``enabled``."""
    # Replacing builtins.print once for the process is what makes prints in any
    # module visible; the contextvar keeps the effect to this run's threads.
    if builtins.print is not _print_as_log:
        builtins.print = _print_as_log
    token = _print_to_log.set(enabled)
    try:
        yield
    finally:
        _print_to_log.reset(token)
