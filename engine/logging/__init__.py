"""Run logging: ``get_run_logger`` records carry run ids and land in the run store."""

from engine.logging.configuration import ensure_logging_setup, setup_logging
from engine.logging.handlers import RunStoreHandler
from engine.logging.loggers import (
    LogEavesdropper,
    disable_logger,
    disable_run_logger,
    flow_run_logger,
    get_logger,
    get_run_logger,
    patch_print,
    task_run_logger,
)

__all__ = [
    "LogEavesdropper",
    "RunStoreHandler",
    "disable_logger",
    "disable_run_logger",
    "ensure_logging_setup",
    "flow_run_logger",
    "get_logger",
    "get_run_logger",
    "patch_print",
    "setup_logging",
    "task_run_logger",
]
