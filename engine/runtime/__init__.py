"""Facts about the current run as module attributes, as in the seed API's ``prefect.runtime``.

Example::

    from engine import runtime

    @flow
    def report():
        print(runtime.flow_run.name, runtime.flow_run.parameters)

Outside a run every attribute has an empty value (None, ``{}``, ``[]``).
"""

from engine.runtime import deployment, flow_run, task_run

__all__ = ["deployment", "flow_run", "task_run"]
