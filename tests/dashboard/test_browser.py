"""The dashboard's pages in a real headless chromium: the runs list, a run's task graph,
and a running flow's graph changing state without a reload."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import redis
from distributed.fleet import Fleet
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from engine.schemas import FlowRun, TaskRun
from engine.states import Completed
from engine.store.redis import RedisRunStore

from .conftest import Dashboard, poll, start_dashboard, stop, submit


def nodes(browser: Any) -> dict[str, str]:
    """The task graph's nodes on the page: task run name -> state name."""
    found = browser.find_elements(By.CSS_SELECTOR, "#graph g.node")
    return {n.get_attribute("data-task-run-name"): n.get_attribute("data-state") for n in found}


def test_the_runs_page_lists_a_finished_run(
    browser: Any, dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    run_id = submit(fleet, f"{flows_file}:diamond", "--param", "x=2")
    browser.get(dashboard.url + "/")

    def row_state() -> str:
        row = browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run-id="{run_id}"]')
        return str(row.find_element(By.CSS_SELECTOR, ".run-state").text)

    assert poll(row_state, "the run's row") == "Completed"
    row = browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run-id="{run_id}"]')
    assert "diamond" in row.text

    # The flow filter keeps it; a state filter it does not match hides it.
    Select(browser.find_element(By.ID, "flow-filter")).select_by_value("diamond")
    poll(lambda: "flow=diamond" in browser.current_url, "the filter in the address")
    poll(row_state, "the run's row under the flow filter")
    browser.get(dashboard.url + "/?state=Failed")
    poll(lambda: "shown" in browser.find_element(By.ID, "runs-count").text, "the filtered list")
    assert not browser.find_elements(By.CSS_SELECTOR, f'#runs tr[data-run-id="{run_id}"]')

    # The workers answer Celery's inspect (remote control is on); the queues are listed.
    live_workers = '#workers tr[data-kind="worker"]'
    poll(lambda: len(browser.find_elements(By.CSS_SELECTOR, live_workers)) == 2, "both workers")
    queues = browser.find_elements(By.CSS_SELECTOR, "#queues tr[data-queue]")
    assert {q.get_attribute("data-queue") for q in queues} == {"celerity", "flows"}

    # Its name links to its page.
    browser.get(dashboard.url + "/")
    link = poll(
        lambda: browser.find_element(By.CSS_SELECTOR, f'#runs tr[data-run-id="{run_id}"] a'),
        "the run's link",
    )
    link.click()
    poll(lambda: browser.current_url.endswith(f"/runs/{run_id}"), "the run's page")


def test_a_run_graph_shows_every_task_node_with_its_state(
    browser: Any, dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    run_id = submit(fleet, f"{flows_file}:diamond", "--param", "x=4")
    task_runs = dashboard.get(f"/api/runs/{run_id}")["task_runs"]
    expected = {run["name"]: "Completed" for run in task_runs}
    assert len(expected) == 3

    browser.get(f"{dashboard.url}/runs/{run_id}")

    assert poll(lambda: nodes(browser) == expected and nodes(browser), "every node") == expected
    assert browser.find_element(By.ID, "run-state").text == "Completed"
    assert browser.find_element(By.ID, "result").text == "41"  # 16 + 25
    bars = browser.find_elements(By.CSS_SELECTOR, "#timeline rect.timeline-bar")
    assert len(bars) == 3
    logs = poll(lambda: browser.find_element(By.ID, "logs").text, "the logs")
    assert "diamond total is 41" in logs


def test_a_failed_run_shows_its_error(
    browser: Any, dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    run_id = submit(fleet, f"{flows_file}:broken", "--param", "a=5")
    browser.get(f"{dashboard.url}/runs/{run_id}")

    poll(lambda: list(nodes(browser).values()) == ["Failed"], "the failed node")
    table = browser.find_element(By.ID, "task-runs")
    assert "ZeroDivisionError" in table.text
    folded = table.find_element(By.CSS_SELECTOR, "details.traceback")
    folded.find_element(By.TAG_NAME, "summary").click()
    assert "a / b" in folded.text  # the failing line, shown once unfolded
    poll(lambda: "Traceback" in browser.find_element(By.ID, "logs").text, "the logged traceback")
    failure = browser.find_element(By.CSS_SELECTOR, "#logs tr.log-level-40")
    assert "divide-" in failure.text  # the line names the task run that wrote it
    assert "ZeroDivisionError" in browser.find_element(By.ID, "result").text


def test_a_subflow_node_opens_the_child_flow_run(
    browser: Any, dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    run_id = submit(fleet, f"{flows_file}:parent", "--param", "x=3")
    (subflow,) = dashboard.get(f"/api/runs/{run_id}")["task_runs"]
    child_id = subflow["child_flow_run_id"]
    assert child_id and subflow["state"]["name"] == "Completed"

    browser.get(f"{dashboard.url}/runs/{run_id}")
    node = poll(
        lambda: browser.find_element(
            By.CSS_SELECTOR, f'#graph g.node[data-task-run-id="{subflow["id"]}"]'
        ),
        "the subflow's node",
    )
    node.click()

    poll(lambda: browser.current_url.endswith(f"/runs/{child_id}"), "the child run's page")
    poll(lambda: list(nodes(browser).values()) == ["Completed"], "the child's square node")
    parent_link = browser.find_element(By.CSS_SELECTOR, f'#fields a[href="/runs/{run_id}"]')
    assert parent_link.text == run_id


def test_a_running_flow_changes_state_without_a_reload(
    browser: Any, dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    key = f"dashboard-test-release-{uuid.uuid4()}"
    run_id = submit(fleet, f"{flows_file}:held", "--param", f"key={key}", wait=False)
    browser.get(f"{dashboard.url}/runs/{run_id}")
    browser.execute_script("window.sameDocument = true;")

    def hold_running() -> bool:
        shown = nodes(browser)
        holds = [state for name, state in shown.items() if name.startswith("hold")]
        return holds == ["Running"] and browser.find_element(By.ID, "run-state").text == "Running"

    poll(hold_running, "the held task's node to show Running")
    client = redis.Redis.from_url(fleet.env["CELERITY_BROKER_URL"])
    try:
        client.rpush(key, "go")
    finally:
        client.close()

    def all_completed() -> bool:
        shown = nodes(browser)
        return len(shown) == 2 and set(shown.values()) == {"Completed"}

    poll(all_completed, "every node to show Completed")
    poll(lambda: browser.find_element(By.ID, "run-state").text == "Completed", "the run's state")
    assert browser.execute_script("return window.sameDocument === true;"), "the page reloaded"


def test_the_graph_draws_upstream_edges_and_places_runs_after_their_upstreams(
    browser: Any, dashboard: Dashboard, fleet: Fleet
) -> None:
    # Given a flow run whose task runs record their inputs: c reads a and b, d waits for c.
    flow_run = FlowRun(name="drawn", flow_name="drawn", state=Completed())
    a, b = (TaskRun(name=n, flow_run_id=flow_run.id, state=Completed()) for n in "ab")
    c = TaskRun(
        name="c",
        flow_run_id=flow_run.id,
        state=Completed(),
        task_inputs={"x": [str(a.id)], "y": [f"task_run:{b.id}"]},
    )
    d = TaskRun(
        name="d", flow_run_id=flow_run.id, state=Completed(), task_inputs={"wait_for": [str(c.id)]}
    )
    store = RedisRunStore(fleet.env["CELERITY_BROKER_URL"])
    try:
        store.create_flow_run(flow_run)
        store.create_task_runs([d, a, b, c])  # created out of order on purpose
    finally:
        store.close()

    browser.get(f"{dashboard.url}/runs/{flow_run.id}")

    poll(lambda: len(nodes(browser)) == 4, "the four nodes")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#graph path.edge")) == 3
    column = {name: _x(browser, name) for name in "abcd"}
    assert column["a"] == column["b"] < column["c"] < column["d"]


def _x(browser: Any, name: str) -> float:
    node = browser.find_element(By.CSS_SELECTOR, f'#graph g.node[data-task-run-name="{name}"]')
    transform = node.get_attribute("transform")  # translate(x,y)
    return float(transform.removeprefix("translate(").split(",")[0])


def test_the_action_buttons_show_only_when_the_dashboard_has_a_token(
    browser: Any, dashboard: Dashboard, fleet: Fleet, flows_file: Path, tmp_path: Path
) -> None:
    run_id = submit(fleet, f"{flows_file}:broken", "--param", "a=1")

    # With a token the row appears once the page has asked /api/info.
    browser.get(f"{dashboard.url}/runs/{run_id}")
    poll(lambda: browser.find_element(By.ID, "retry-button").is_displayed() or None,
         "the Retry button (token set)")

    read_only = start_dashboard(fleet, tmp_path / "read-only.log", token=None)
    try:
        browser.get(f"{read_only.url}/runs/{run_id}")
        # The page has rendered the run (so /api/info has been answered too).
        poll(lambda: list(nodes(browser).values()) == ["Failed"], "the failed node")
        poll(lambda: read_only.get("/api/info")["actions_enabled"] is False, "info")
        assert not browser.find_element(By.ID, "actions").is_displayed()
        assert not browser.find_element(By.ID, "retry-button").is_displayed()
    finally:
        stop(read_only.process)
