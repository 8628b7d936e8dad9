"""Log handlers: run log lines to the run store, and a styled console handler.

Prefect's ``APILogHandler`` ships run logs to its server; here
``RunStoreHandler`` writes them to the run store instead (the store is what
``celerity runs logs`` and the Celery fleet read).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, TextIO

from engine.exceptions import StoreUnavailable
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
    """Writes every record that carries a run id to the run store."""

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = _run_id(getattr(record, "flow_run_id", None))
        task_run_id = _run_id(getattr(record, "task_run_id", None))
        if flow_run_id is None and task_run_id is None:
            return
        try:
            from engine.store import get_store

            log = RunLog(
                name=record.name,
                level=record.levelno,
                message=record.getMessage(),
                flow_run_id=flow_run_id,
                task_run_id=task_run_id,
            )
            get_store().write_logs([log])
        except StoreUnavailable:
            return  # the store is down: the run reports that itself, once, not per line
        except Exception:  # logging must never break the run that logs
            self.handleError(record)


class ConsoleFormatter(logging.Formatter):
    """``time | LEVEL | run name - message`` so that a person can follow runs."""

    def format(self, record: logging.LogRecord) -> str:
        run_name = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        record.run_label = f"{run_name} - " if run_name else ""
        return super().format(record)


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
