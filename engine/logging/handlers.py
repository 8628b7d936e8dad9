"""Log handlers: run log lines to the run store, and a styled console handler.

Prefect's ``APILogHandler`` ships run logs to its server; here
``RunStoreHandler`` writes them to the run store instead (the store is what
``celerity runs logs`` and the Celery fleet read).
"""

from __future__ import annotations

import logging
import sys
import uuid
from typing import Any, TextIO

from engine.exceptions import StoreUnavailable
from engine.logging.echo import ECHOED, FLEET_LOG_ECHO
from engine.logging.formatters import TracebackFormatter
from engine.schemas import RunLog


def _run_id(value: Any) -> uuid.UUID | None:
    """A record's run id as a UUID; None when absent or a placeholder such as ``<unknown>``."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class RunStoreHandler(logging.Handler):
    """Writes every record of a run to the run store.

    A record carries its run's ids when it comes from a run logger; one from
    another library's logger (``logging_extra_loggers``) takes them from the
    run it was logged in, and is dropped outside runs.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, ECHOED, False):
            return  # read from the store to be printed: it is there already
        flow_run_id = _run_id(getattr(record, "flow_run_id", None))
        task_run_id = _run_id(getattr(record, "task_run_id", None))
        if flow_run_id is None and task_run_id is None:
            flow_run_id, task_run_id = _current_run_ids()
            if flow_run_id is None and task_run_id is None:
                return
        if FLEET_LOG_ECHO.enabled:  # this process prints its own lines: not echoed again
            FLEET_LOG_ECHO.note_local(task_run_id or flow_run_id)
        try:
            from engine.store import get_store

            log = RunLog(
                name=record.name,
                level=record.levelno,
                message=_message(record),
                flow_run_id=flow_run_id,
                task_run_id=task_run_id,
            )
            get_store().write_logs([log])
        except StoreUnavailable:
            return  # the store is down: the run reports that itself, once, not per line
        except Exception:  # logging must never break the run that logs
            self.handleError(record)


_TRACEBACK_FORMATTER = TracebackFormatter()


def _message(record: logging.LogRecord) -> str:
    """The record's message, followed by its exception's traceback when it carries one.

    The text is kept on the record (``exc_text``), as ``logging.Formatter`` does,
    so the console handler formats the traceback once for both.
    """
    message = record.getMessage()
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        message = f"{message}\n{record.exc_text}"
    return message


def _current_run_ids() -> tuple[uuid.UUID | None, uuid.UUID | None]:
    from engine.context import FlowRunContext, TaskRunContext

    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        task_run = task_ctx.task_run
        return _run_id(getattr(task_run, "flow_run_id", None)), _run_id(task_run.id)
    flow_ctx = FlowRunContext.get()
    flow_run = getattr(flow_ctx, "flow_run", None)
    return _run_id(getattr(flow_run, "id", None)), None


def _celery_redirected(stream: Any) -> bool:
    """Whether ``stream`` is Celery's stand-in for a standard stream in a worker.

    A Celery worker replaces ``sys.stdout``/``sys.stderr`` with a proxy that
    logs each write to its own logger (at WARNING), and owns the root logger.
    """
    kind = type(stream)
    return kind.__name__ == "LoggingProxy" and kind.__module__.startswith("celery.")


def _real_stream(stream: Any) -> Any:
    """What a console handler inside a Celery worker writes to: the process's real stream.

    Writing to Celery's proxy would print each line a second time, as a
    WARNING of Celery's; and Celery's root handler would print it a third
    time if ``celerity`` records kept propagating to the root logger, so
    they stop there: the console handler is the one that prints them.
    """
    logging.getLogger("celerity").propagate = False
    if stream is sys.stdout or stream is sys.__stdout__:
        return sys.__stdout__
    if _celery_redirected(stream) or stream is None or stream is sys.__stderr__:
        return sys.__stderr__
    return stream  # a file of the application's: keep it


class SafeStreamHandler(logging.StreamHandler):
    """A stream handler that drops records once its stream is closed.

    At interpreter exit, or when a test's captured stream was closed, writing
    raises ``ValueError``; a log line is not worth a traceback then.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if _celery_redirected(sys.stderr):
            self.setStream(_real_stream(self.stream))
        if getattr(self.stream, "closed", False):
            return
        super().emit(record)


_SafeStreamHandler = SafeStreamHandler


class ConsoleHandler(logging.StreamHandler):
    """Writes records to a terminal through rich: levels and run names highlighted, no wrapping.

    ``stream`` defaults to standard error (looked up at each write, so that
    redirections made later are followed). ``highlighter`` is a rich
    highlighter class, ``styles`` maps its style names to rich styles. The
    ``logging_colors`` setting (``PREFECT_LOGGING_COLORS``) off turns both off;
    ``logging_markup`` (``PREFECT_LOGGING_MARKUP``) renders rich markup in messages.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        highlighter: Any = None,
        styles: dict[str, str] | None = None,
        level: int | str = logging.NOTSET,
    ) -> None:
        super().__init__(stream=stream)
        self.setLevel(level)
        self.console = _console(stream, highlighter, styles)

    def emit(self, record: logging.LogRecord) -> None:
        if _celery_redirected(sys.stderr):
            self.console.file = _real_stream(self.console.file)
        try:
            message = self.format(record)
            self.console.print(message, soft_wrap=True)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


PrefectConsoleHandler = ConsoleHandler


def _console(stream: TextIO | None, highlighter: Any, styles: dict[str, str] | None) -> Any:
    from rich.console import Console
    from rich.highlighter import NullHighlighter
    from rich.theme import Theme

    from engine.config import current_settings
    from engine.logging.highlighters import ConsoleHighlighter

    settings = current_settings()
    if settings.logging_colors:
        highlighter_instance = (highlighter or ConsoleHighlighter)()
        theme = Theme(styles or {}, inherit=False)
    else:
        highlighter_instance = NullHighlighter()
        theme = Theme(inherit=False)
    return Console(
        file=stream,
        stderr=stream is None,
        highlighter=highlighter_instance,
        theme=theme,
        markup=settings.logging_markup,
    )
