"""The one way code outside a store changes a task run's state.

The task engine, the runners (NotReady, Crashed), the worker (Failed when a run
cannot be loaded, takeovers) and the coordinator's reaper all propose through
here, so the state always names its run and flow run, and a store lost under
the caller is handled in one place.
"""

from __future__ import annotations

from typing import Any

from engine.exceptions import ObjectNotFound, StoreUnavailable
from engine.orchestration import OrchestrationResult
from engine.schemas import TaskRun
from engine.states import State
from engine.store import get_store
from engine.store.base import RunStore


def propose_task_run(
    task_run: TaskRun, state: State[Any], force: bool = False, store: RunStore | None = None
) -> OrchestrationResult:
    """Propose ``state`` for ``task_run`` (filling in the run links); the store's answer.

    ``store`` defaults to this process's store.
    """
    state.state_details.task_run_id = task_run.id
    state.state_details.flow_run_id = task_run.flow_run_id
    return (store or get_store()).propose_state(task_run.id, state, force=force)


def propose_task_run_state(
    task_run: TaskRun, state: State[Any], force: bool = False, *, store_may_be_lost: bool = False
) -> State[Any]:
    """Propose ``state`` for ``task_run``; the state now in effect.

    With ``store_may_be_lost`` a store that is unreachable, or that lost the run,
    yields ``state`` itself: the caller finishes a future with it rather than
    leave the future waiting forever.
    """
    try:
        outcome = propose_task_run(task_run, state, force)
    except (StoreUnavailable, ObjectNotFound):
        if not store_may_be_lost:
            raise
        return state
    return outcome.state or state


__all__ = ["propose_task_run", "propose_task_run_state"]
