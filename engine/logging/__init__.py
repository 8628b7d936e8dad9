"""Run logging: ``get_run_logger`` records carry run ids and land in the run store."""

from engine.logging.handlers import RunStoreHandler
from engine.logging.loggers import (
    disable_run_logger,
    get_logger,
    get_run_logger,
    patch_print,
    setup_logging,
)

__all__ = [
    "RunStoreHandler",
    "disable_run_logger",
    "get_logger",
    "get_run_logger",
    "patch_print",
    "setup_logging",
]
