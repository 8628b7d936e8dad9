"""Log formatters: one line per record in JSON, and a format per kind of run."""

from __future__ import annotations

import datetime
import json
import logging
import os
import traceback
import uuid
from pathlib import Path
from typing import Any

_ENGINE_DIR = str(Path(__file__).resolve().parents[1]) + os.sep


def format_traceback(exc: BaseException) -> str:
    """``exc`` with its traceback as Python prints it, without the engine's own frames.

    The reader looks for their code: the frames of the engine that called it
    (or that raised a failed task run's exception again in its flow) are left
    out, unless no other frame is left, or the ``debug_mode`` setting is on.
    """
    summary = traceback.TracebackException.from_exception(exc)
    if not _debugging():
        _drop_engine_frames(summary, seen=set())
    return "".join(summary.format())


def _drop_engine_frames(summary: traceback.TracebackException | None, seen: set[int]) -> None:
    """Drop the engine's frames from ``summary`` and the exceptions it was raised from."""
    if summary is None or id(summary) in seen:
        return
    seen.add(id(summary))
    theirs = [frame for frame in summary.stack if not frame.filename.startswith(_ENGINE_DIR)]
    if theirs:
        summary.stack = traceback.StackSummary.from_list(theirs)
    _drop_engine_frames(summary.__cause__, seen)
    _drop_engine_frames(summary.__context__, seen)


def _debugging() -> bool:
    from engine.config import current_settings

    return bool(current_settings().debug_mode)


class TracebackFormatter(logging.Formatter):
    """A ``logging.Formatter`` that prints exceptions as ``format_traceback`` does."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 - the stdlib's spelling
        if ei and ei[1] is not None:
            return format_traceback(ei[1]).rstrip("\n")
        return super().formatException(ei)


def _json_default(value: Any) -> Any:
    """What ``json`` cannot write itself: UUIDs and dates as text, anything else named."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return f"<non-serializable: {type(value).__name__}>"


def _exception(exc_info: Any) -> dict[str, Any] | None:
    if not exc_info or exc_info[0] is None:
        return None
    kind, exc, tb = exc_info
    return {
        "type": kind.__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_tb(tb)) if tb else None,
    }


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object of all its attributes (for log collectors).

    ``fmt`` is ``"default"`` (one line) or ``"pretty"`` (indented); the other
    arguments are taken for ``logging.config`` compatibility. An exception
    becomes ``exc_info: {type, message, traceback}``; a value JSON cannot hold
    becomes ``"<non-serializable: TypeName>"`` instead of failing the line.
    """

    def __init__(self, fmt: str | None = "default", dmft: str | None = None, style: str = "%"):
        super().__init__()
        if fmt not in (None, "default", "pretty"):
            raise ValueError("JsonFormatter's fmt is 'default' or 'pretty'.")
        self.indent = 4 if fmt == "pretty" else None

    def format(self, record: logging.LogRecord) -> str:
        fields = {**record.__dict__, "exc_info": _exception(record.exc_info)}
        return json.dumps(fields, indent=self.indent, default=_json_default)


class RunFormatter(TracebackFormatter):
    """A ``logging.Formatter`` with a format of its own for flow run and task run records.

    A record with a ``task_run_id`` uses ``task_run_fmt``, one with a
    ``flow_run_id`` ``flow_run_fmt``, others ``format``.
    """

    def __init__(
        self,
        format: str | None = None,  # noqa: A002 - logging.config passes it by this name
        datefmt: str | None = None,
        style: Any = "%",
        validate: bool = True,
        *,
        defaults: dict[str, Any] | None = None,
        task_run_fmt: str | None = None,
        flow_run_fmt: str | None = None,
    ) -> None:
        super().__init__(format, datefmt, style, validate, defaults=defaults)
        self._task_run = self._sibling(task_run_fmt or format, datefmt, style, defaults)
        self._flow_run = self._sibling(flow_run_fmt or format, datefmt, style, defaults)

    @staticmethod
    def _sibling(fmt: str | None, datefmt: str | None, style: Any, defaults: Any) -> Any:
        return TracebackFormatter(fmt, datefmt, style, defaults=defaults)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_run_id", None) is not None:
            return self._task_run.format(record)
        if getattr(record, "flow_run_id", None) is not None:
            return self._flow_run.format(record)
        return super().format(record)


PrefectFormatter = RunFormatter
