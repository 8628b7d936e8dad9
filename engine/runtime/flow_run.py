"""The current flow run: ``id``, ``name``, ``flow_name``, ``parameters``, ``tags``, ...

Attributes are read when accessed (module ``__getattr__``), so they always
describe the run the calling code belongs to; inside a task run they describe
the task run's flow run.
"""

from __future__ import annotations

from typing import Any

from engine.context import FlowRunContext, TaskRunContext

_ATTRIBUTES = [
    "id",
    "name",
    "flow_name",
    "flow_version",
    "parameters",
    "tags",
    "run_count",
    "scheduled_start_time",
    "parent_flow_run_id",
    "parent_deployment_id",
    "root_flow_run_id",
    "deployment_id",
    "job_variables",
    "api_url",
    "ui_url",
]

_EMPTY: dict[str, Any] = {"parameters": {}, "tags": [], "run_count": 0, "job_variables": {}}


def _current_flow_run() -> Any:
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None:
        return flow_ctx.flow_run
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        from engine.store import get_store

        try:
            return get_store().read_flow_run(task_ctx.task_run.flow_run_id)
        except Exception:  # the store may not hold it (a task run on its own)
            return None
    return None


def _attribute(run: Any, name: str) -> Any:
    if name == "id":
        return str(run.id)
    if name == "parameters":
        flow_ctx = FlowRunContext.get()
        if flow_ctx is not None and flow_ctx.flow_run is run:
            return dict(flow_ctx.parameters)
        return dict(run.parameters)
    if name == "scheduled_start_time":
        return run.start_time or run.created
    if name == "root_flow_run_id":
        return _root_id(run)
    if name == "parent_flow_run_id":
        return str(run.parent_flow_run_id) if run.parent_flow_run_id else None
    if name == "tags":
        return list(run.tags)
    return getattr(run, name, None)


def _root_id(run: Any) -> str:
    from engine.store import get_store

    while run.parent_flow_run_id is not None:
        try:
            run = get_store().read_flow_run(run.parent_flow_run_id)
        except Exception:  # a parent outside this store: the furthest one known
            return str(run.parent_flow_run_id)
    return str(run.id)


def __getattr__(name: str) -> Any:
    if name not in _ATTRIBUTES:
        raise AttributeError(f"{__name__} has no attribute {name!r}")
    run = _current_flow_run()
    if run is None:
        return _EMPTY.get(name)
    return _attribute(run, name)


def __dir__() -> list[str]:
    return list(_ATTRIBUTES)
