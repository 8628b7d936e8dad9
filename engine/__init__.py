"""Celerity's engine: Prefect's ``@flow`` / ``@task`` API, runnable on threads or Celery workers.

Code written for Prefect's engine API ports by changing the import root::

    from engine import flow, task

    @task(retries=2)
    def double(x: int) -> int:
        return 2 * x

    @flow
    def pipeline(n: int = 3) -> int:
        return sum(double.map(range(n)).result())
"""

from engine.annotations import allow_failure, quote, unmapped
from engine.context import get_run_context, tags
from engine.flow_attempts import retry_flow_run
from engine.flow_runs import pause_flow_run, resume_flow_run, suspend_flow_run
from engine.flows import Flow, flow
from engine.futures import as_completed, wait
from engine.logging import disable_run_logger, get_logger, get_run_logger
from engine.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
    Suspended,
    TimedOut,
)
from engine.task_runners import TaskRunner, ThreadPoolTaskRunner
from engine.tasks import Task, task
from engine.transactions import Transaction, transaction

__version__ = "0.1.0"

__all__ = [
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Flow",
    "NotReady",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateType",
    "Suspended",
    "Task",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "TimedOut",
    "Transaction",
    "allow_failure",
    "as_completed",
    "disable_run_logger",
    "flow",
    "get_logger",
    "get_run_context",
    "get_run_logger",
    "pause_flow_run",
    "quote",
    "resume_flow_run",
    "retry_flow_run",
    "suspend_flow_run",
    "tags",
    "task",
    "transaction",
    "unmapped",
    "wait",
]
