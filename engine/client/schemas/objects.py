"""``prefect.client.schemas.objects``'s public records, as Celerity defines them.

The same classes as ``engine.states`` and ``engine.schemas`` (not copies), so
a state built from either path compares and matches as one.
"""

from engine.schemas import FlowRun, TaskRun
from engine.states import State, StateDetails, StateType

__all__ = ["FlowRun", "State", "StateDetails", "StateType", "TaskRun"]
