"""Records the run store keeps: flow runs, task runs and run logs."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.results import ResultRef
from engine.states import State, now


class RunBase(BaseModel):
    """Fields shared by flow runs and task runs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    name: str
    tags: list[str] = Field(default_factory=list)
    # The bare class, not State[Any]: pydantic copies any instance that is not
    # of the exact parametrized class, so every run built from a state would
    # carry a copy of it (a cost per run and per proposal, and a state the
    # caller holds that is not the run's).
    state: State | None = None
    run_count: int = 0
    created: datetime.datetime = Field(default_factory=now)
    start_time: datetime.datetime | None = None
    end_time: datetime.datetime | None = None
    total_run_time: float = 0.0
    worker: str | None = None

    @property
    def state_type(self) -> Any:
        return self.state.type if self.state else None

    @property
    def state_name(self) -> str | None:
        return self.state.name if self.state else None


class FlowRun(RunBase):
    """One run of a flow."""

    flow_name: str = ""
    flow_version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    parent_task_run_id: uuid.UUID | None = None
    parent_flow_run_id: uuid.UUID | None = None
    # What running it again in another process needs (see engine.flow_attempts):
    # where to import the flow from and its parameters as given (signed, by
    # reference).
    flow_ref: dict[str, str] | None = None
    parameters_ref: ResultRef | None = None


class TaskRun(RunBase):
    """One run of a task inside a flow run (or on its own)."""

    flow_run_id: uuid.UUID | None = None
    task_key: str = ""
    dynamic_key: str = "0"
    task_inputs: dict[str, list[str]] = Field(default_factory=dict)
    # Created inside a transaction: the process that holds the transaction
    # caches the result on commit, so a worker running it must not.
    in_transaction: bool = False


class RunLog(BaseModel):
    """One log line emitted by a run."""

    name: str
    level: int
    message: str
    timestamp: datetime.datetime = Field(default_factory=now)
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
