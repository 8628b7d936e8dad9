"""The handler that ships run log records to the run store."""

from __future__ import annotations

import logging

from engine.exceptions import StoreUnavailable
from engine.schemas import RunLog


class RunStoreHandler(logging.Handler):
    """Writes every record that carries a run id to the run store."""

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = getattr(record, "flow_run_id", None)
        task_run_id = getattr(record, "task_run_id", None)
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
