"""The current task run: ``id``, ``name``, ``task_name``, ``parameters``, ``tags``, ..."""

from __future__ import annotations

from typing import Any

from engine.context import TaskRunContext

_ATTRIBUTES = ["id", "name", "task_name", "parameters", "tags", "run_count", "api_url", "ui_url"]

_EMPTY: dict[str, Any] = {"parameters": {}, "tags": [], "run_count": 0}


def __getattr__(name: str) -> Any:
    if name not in _ATTRIBUTES:
        raise AttributeError(f"{__name__} has no attribute {name!r}")
    task_ctx = TaskRunContext.get()
    if task_ctx is None:
        return _EMPTY.get(name)
    run = task_ctx.task_run
    if name == "id":
        return str(run.id)
    if name == "task_name":
        return task_ctx.task.name if task_ctx.task is not None else None
    if name == "parameters":
        return dict(task_ctx.parameters)
    if name == "tags":
        return list(run.tags)
    return getattr(run, name, None)


def __dir__() -> list[str]:
    return list(_ATTRIBUTES)
