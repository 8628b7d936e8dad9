"""Celery workers, the Celery task runner and the coordinator for distributed flow runs."""

from typing import Any

from workers.producer import SubmissionError, submit_flow_run, wait_for_flow_run

__all__ = ["CeleryTaskRunner", "SubmissionError", "submit_flow_run", "wait_for_flow_run"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the runner pulls in Celery, which a producer
    # that only submits flow runs does not need.
    if name == "CeleryTaskRunner":
        from workers.task_runner import CeleryTaskRunner

        return CeleryTaskRunner
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
