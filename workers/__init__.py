"""Celery workers, the Celery task runner and the coordinator for distributed flow runs."""

from workers.producer import SubmissionError, submit_flow_run, wait_for_flow_run

__all__ = ["SubmissionError", "submit_flow_run", "wait_for_flow_run"]
