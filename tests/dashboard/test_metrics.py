"""``/metrics`` on a real fleet: Prometheus's text format with every family and plausible
values after flows ran, and lease recoveries counted by the fleet's sweepers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distributed.fleet import Fleet
from prometheus_client.parser import text_string_to_metric_families

from engine.schemas import FlowRun
from engine.states import Pending, Running
from engine.store import keys
from engine.store.redis import RedisRunStore
from workers.sweeper import FlowRunSweeper

from .conftest import Dashboard, poll, submit

FAMILIES = {
    "celerity_flow_runs": "gauge",
    "celerity_task_runs": "gauge",
    "celerity_task_run_duration_seconds": "histogram",
    "celerity_queue_depth": "gauge",
    "celerity_queue_reserved": "gauge",
    "celerity_workers_alive": "gauge",
    "celerity_lease_recoveries": "counter",
    "celerity_metrics_source_up": "gauge",
}


def scrape(dashboard: Dashboard) -> dict[str, Any]:
    """The families of one scrape, by name."""
    text = dashboard.text("/metrics")
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(family: Any, sample_name: str | None = None) -> dict[tuple[Any, ...], float]:
    """A family's samples (of ``sample_name``, default the family's own) by label values."""
    wanted = sample_name or family.name
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == wanted}


def test_metrics_have_every_family_with_plausible_values(
    dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    submit(fleet, f"{flows_file}:diamond", "--param", "x=5")
    submit(fleet, f"{flows_file}:broken", "--param", "a=2")

    families = poll(lambda: _alive(scrape(dashboard)), "a scrape with the workers alive")

    assert {name: families[name].type for name in FAMILIES} == FAMILIES
    flows = values(families["celerity_flow_runs"])
    assert flows[(("state", "Completed"),)] >= 1 and flows[(("state", "Failed"),)] >= 1
    tasks = values(families["celerity_task_runs"])
    assert tasks[(("state", "Completed"),)] >= 3 and tasks[(("state", "Failed"),)] >= 1

    durations = families["celerity_task_run_duration_seconds"]
    counts = values(durations, "celerity_task_run_duration_seconds_count")
    assert counts[(("task", "dash_flows.square"),)] >= 2
    assert counts[(("task", "dash_flows.add"),)] >= 1
    sums = values(durations, "celerity_task_run_duration_seconds_sum")
    assert 0 < sums[(("task", "dash_flows.square"),)] < 60
    infinite = values(durations, "celerity_task_run_duration_seconds_bucket")
    assert (
        infinite[(("le", "+Inf"), ("task", "dash_flows.square"))]
        == counts[(("task", "dash_flows.square"),)]
    )

    for family in ("celerity_queue_depth", "celerity_queue_reserved"):
        queues = values(families[family])
        assert set(queues) == {(("queue", "celerity"),), (("queue", "flows"),)}
        assert all(depth >= 0 for depth in queues.values())
    assert values(families["celerity_metrics_source_up"]) == {
        (("source", "broker"),): 1.0,
        (("source", "store"),): 1.0,
    }


def _alive(families: dict[str, Any]) -> dict[str, Any] | None:
    alive = values(families["celerity_workers_alive"])[()]
    return families if alive == 3 else None  # two workers and the coordinator


def test_durations_count_each_task_run_once(
    dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    def square_count() -> float:
        family = scrape(dashboard)["celerity_task_run_duration_seconds"]
        return values(family, "celerity_task_run_duration_seconds_count").get(
            (("task", "dash_flows.square"),), 0.0
        )

    before = square_count()
    assert square_count() == before  # scraping again observes nothing new
    submit(fleet, f"{flows_file}:diamond", "--param", "x=6")
    assert square_count() == before + 2


def test_a_swept_flow_run_counts_as_a_lease_recovery(dashboard: Dashboard, fleet: Fleet) -> None:
    def recovered() -> float:
        family = scrape(dashboard)["celerity_lease_recoveries"]
        return values(family, "celerity_lease_recoveries_total")[(("kind", "lapsed_flow_run"),)]

    before = recovered()
    store = RedisRunStore(fleet.env["CELERITY_BROKER_URL"])
    try:
        # A flow run whose process died: Running, its lease gone.
        flow_run = FlowRun(name="lost", flow_name="lost", state=Pending())
        flow_run.state.state_details.flow_run_id = flow_run.id
        store.create_flow_run(flow_run)
        running = Running()
        running.state_details.worker = "gone:1"
        store.propose_state(flow_run.id, running)
        store.client.delete(keys.lease(store.prefix, flow_run.id))
        # This sweeper or one of the fleet's ends it, exactly once.
        FlowRunSweeper(store).sweep_once()
        poll(lambda: store.read_flow_run(flow_run.id).state.is_crashed(), "the sweep")
    finally:
        store.close()
    assert poll(lambda: recovered() == before + 1, "the recovery to be counted")
