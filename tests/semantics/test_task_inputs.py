"""Each task run records its inputs: per parameter, the upstream task runs whose futures
or states were passed in (at any depth), and ``wait_for`` under its own key.

The dashboard draws its task graph's edges from these records, so they are read back
here from the run store, as the dashboard reads them.
"""

import asyncio

import pytest

from engine import allow_failure, flow, quote, task, unmapped
from engine.context import FlowRunContext, get_run_context
from engine.exceptions import CelerityException, RunRecordArgumentError
from engine.utilities.annotations import opaque

from . import _helpers as h
from ._tasks import add, fail_task


@task
def total(values, extra=0):
    return sum(values) + extra


@task
def deep_sum(x):
    first, rest = x["deep"]
    return first + sum(rest)


@task
def kinds(payload):
    return [type(item).__name__ for item in payload]


@flow
def takes(value):
    return value


@flow
def edges_flow():
    a = add.submit(1, 1)
    b = add.submit(a, 1)
    c = total.submit(values=[a, b], wait_for=[b])
    d = deep_sum.submit({"deep": (a, [c])})
    s = add(c, 1, return_state=True)  # called inline: a state that names its task run
    e = total.submit([s, 1], extra=allow_failure(d))
    q = kinds.submit(quote([s]))
    sub = takes(d, return_state=True)
    ids = {name: f.task_run_id for name, f in dict(a=a, b=b, c=c, d=d, e=e, q=q).items()}
    ids["s"] = s.state_details.task_run_id
    assert (e.result(), q.result(), sub.result()) == (6 + 1 + 7, ["State"], 7)
    return ids


@flow
def mapped_flow():
    a = add.submit(1, 1)
    b = add.submit(2, 2)
    over_futures = add.map([a, b], unmapped(a))
    plain = add.map([1, 2], 3)
    return [a.task_run_id, b.task_run_id], [f.task_run_id for f in over_futures + plain]


@flow
def not_ready_flow():
    failing = fail_task.submit("upstream broke")
    downstream = add.submit(failing, 1)
    waiting = add.submit(1, 1, wait_for=[failing])
    downstream.wait()
    waiting.wait()
    return failing.task_run_id, downstream.task_run_id, waiting.task_run_id


def inputs_of(run_id) -> dict[str, list[str]]:
    return h.task_run(run_id).task_inputs


class TestTaskInputs:
    def test_each_parameter_names_its_upstreams_and_wait_for_has_its_own_key(self):
        ids = {name: str(run_id) for name, run_id in edges_flow().items()}
        a, b, c, d, s = ids["a"], ids["b"], ids["c"], ids["d"], ids["s"]

        assert inputs_of(ids["a"]) == {}  # plain values: no upstreams
        assert inputs_of(ids["b"]) == {"x": [a]}
        assert inputs_of(ids["c"]) == {"values": [a, b], "wait_for": [b]}
        assert inputs_of(ids["d"]) == {"x": [a, c]}  # inside a dict, a tuple, a list
        assert inputs_of(ids["s"]) == {"x": [c]}  # an inline call records its inputs too
        assert inputs_of(ids["e"]) == {"values": [s], "extra": [d]}  # a state; allow_failure
        assert inputs_of(ids["q"]) == {}  # quoted values are not looked into

    def test_a_subflow_parent_task_run_names_the_futures_passed_to_it(self):
        ids = edges_flow()
        flow_run_id = h.task_run(ids["a"]).flow_run_id
        (parent,) = [
            run
            for run in h.store().read_task_runs(flow_run_id)
            if run.task_key.startswith("subflow:")
        ]
        assert parent.task_inputs == {"value": [str(ids["d"])]}

    def test_mapped_runs_name_the_upstream_each_call_received(self):
        (a, b), mapped = mapped_flow()
        a, b = str(a), str(b)
        assert [inputs_of(run_id) for run_id in mapped] == [
            {"x": [a], "y": [a]},
            {"x": [b], "y": [a]},
            {},
            {},
        ]

    def test_a_run_that_never_ran_still_names_the_upstream_that_failed(self):
        failing, downstream, waiting = (str(run_id) for run_id in not_ready_flow())
        assert h.names(downstream)[-1] == "NotReady"
        assert inputs_of(downstream) == {"x": [failing]}
        assert inputs_of(waiting) == {"wait_for": [failing]}


# --- run records as arguments ------------------------------------------------------------


@task
def record_id(run, x=0):
    return str(run.id)


@flow
def passes_its_record(how: str):
    run = get_run_context().flow_run
    if how == "call":
        return record_id(run)
    if how == "submit":
        return record_id.submit(run).result()
    if how == "map":
        return record_id.map(run, x=[1, 2]).result()
    return [record_id(opaque(run)), str(run.id)]


@task
def own_flow_run():
    return FlowRunContext.get().flow_run


@flow
def passes_an_upstream_record(how: str):
    upstream = own_flow_run.submit() if how == "future" else own_flow_run(return_state=True)
    downstream = record_id(upstream, return_state=True)
    return downstream, record_id(opaque(upstream))


@flow
async def async_passes_its_record():
    return record_id(get_run_context().flow_run)


class TestRunRecordArguments:
    """A FlowRun or TaskRun record holds a state that would be taken for an
    upstream's: passed as it is, the call fails saying so (and how to pass it)."""

    @pytest.mark.parametrize("how", ["call", "submit", "map"])
    def test_a_flow_run_record_as_an_argument_is_refused(self, how):
        with pytest.raises(
            RunRecordArgumentError, match=r"`FlowRun` object .*`opaque\(flow_run\)`"
        ):
            passes_its_record(how)

    def test_refused_in_an_async_flow_too(self):
        with pytest.raises(CelerityException, match="`FlowRun` object"):
            asyncio.run(async_passes_its_record())

    def test_wrapped_in_opaque_it_is_passed_as_it_is(self):
        received, own_id = passes_its_record("opaque")
        assert received == own_id

    @pytest.mark.parametrize("how", ["future", "state"])
    def test_an_upstream_returning_a_record_fails_the_downstream_run(self, how):
        downstream, through_opaque = passes_an_upstream_record(how)
        assert downstream.is_failed()  # final, and saying why
        assert "`FlowRun` object as a task argument is not supported" in downstream.message
        with pytest.raises(RunRecordArgumentError):
            downstream.result()
        assert h.names(downstream.state_details.task_run_id)[-1] == "Failed"
        assert len(through_opaque) == 36  # opaque(upstream) passes the record's id through
