"""Log formatters: one line per record in JSON, and a format per kind of run."""

from __future__ import annotations

import datetime
import json
import logging
import traceback
import uuid
from typing import Any


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


class RunFormatter(logging.Formatter):
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
        return logging.Formatter(fmt, datefmt, style, defaults=defaults)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_run_id", None) is not None:
            return self._task_run.format(record)
        if getattr(record, "flow_run_id", None) is not None:
            return self._flow_run.format(record)
        return super().format(record)


PrefectFormatter = RunFormatter
