"""The run records and state types, at the path Prefect code imports them from."""

from engine.client.schemas.objects import FlowRun, State, StateDetails, StateType, TaskRun

__all__ = ["FlowRun", "State", "StateDetails", "StateType", "TaskRun"]
