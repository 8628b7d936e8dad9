"""The dashboard's JSON API on a real fleet: runs, one run in full, logs, fleet, actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from distributed.fleet import Fleet

from .conftest import TOKEN, Dashboard, poll, start_dashboard, stop, submit


@pytest.fixture(scope="module")
def diamond_run(fleet: Fleet, flows_file: Path) -> str:
    return submit(fleet, f"{flows_file}:diamond", "--param", "x=3")


@pytest.fixture(scope="module")
def broken_run(fleet: Fleet, flows_file: Path) -> str:
    return submit(fleet, f"{flows_file}:broken", "--param", "a=1")


def test_runs_list_shows_finished_runs_and_filters_them(
    dashboard: Dashboard, diamond_run: str, broken_run: str
) -> None:
    listed = dashboard.get("/api/runs")
    by_id = {run["id"]: run for run in listed["runs"]}
    assert by_id[diamond_run]["state"]["name"] == "Completed"
    assert by_id[diamond_run]["flow_name"] == "diamond"
    assert by_id[broken_run]["state"]["name"] == "Failed"
    assert {"diamond", "broken"} <= set(listed["flows"])

    failed = dashboard.get("/api/runs?state=failed")["runs"]
    assert broken_run in {run["id"] for run in failed}
    assert all(run["state"]["type"] == "FAILED" for run in failed)
    assert dashboard.status("/api/runs?state=nonsense") == 422
    diamonds = dashboard.get("/api/runs?flow=diamond")["runs"]
    assert diamond_run in {run["id"] for run in diamonds}
    assert {run["flow_name"] for run in diamonds} == {"diamond"}


def test_a_run_in_full(dashboard: Dashboard, diamond_run: str) -> None:
    detail = dashboard.get(f"/api/runs/{diamond_run}")

    assert detail["flow_run"]["parameters"] == {"x": 3}
    assert detail["flow_run"]["final"] is True
    assert detail["result"] == {"available": True, "type": "int", "summary": "25"}
    tasks = detail["task_runs"]
    assert detail["task_run_count"] == 3 and detail["task_run_states"] == {"Completed": 3}
    names = sorted(run["task_key"].rsplit(".", 1)[-1] for run in tasks)
    assert names == ["add", "square", "square"]
    assert all(run["state"]["name"] == "Completed" and run["worker"] for run in tasks)
    assert all(run["duration"] is not None and run["duration"] >= 0 for run in tasks)
    assert [state["type"] for state in detail["history"]][-1] == "COMPLETED"
    assert "RUNNING" in [state["type"] for state in detail["history"]]


def test_the_task_graph_has_an_edge_from_each_upstream(
    dashboard: Dashboard, diamond_run: str
) -> None:
    # diamond: add.submit(first, second) with first, second = square.submit(...)
    tasks = dashboard.get(f"/api/runs/{diamond_run}")["task_runs"]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for run in tasks:
        by_task.setdefault(run["task_key"].rsplit(".", 1)[-1], []).append(run)
    (add,) = by_task["add"]
    squares = {run["id"] for run in by_task["square"]}
    assert sorted(add["upstreams"]) == sorted(squares)
    assert all(run["upstreams"] == [] for run in by_task["square"])


def test_logs_from_an_offset(dashboard: Dashboard, diamond_run: str) -> None:
    every_line = dashboard.get(f"/api/runs/{diamond_run}/logs")
    messages = [log["message"] for log in every_line["logs"]]
    assert any("diamond total is 25" in message for message in messages), messages
    assert every_line["next_offset"] == len(messages)

    rest = dashboard.get(f"/api/runs/{diamond_run}/logs?offset={len(messages) - 1}")
    assert [log["message"] for log in rest["logs"]] == messages[-1:]


def test_a_failed_task_says_why(dashboard: Dashboard, broken_run: str) -> None:
    detail = dashboard.get(f"/api/runs/{broken_run}")

    (divide,) = detail["task_runs"]
    assert divide["state"]["name"] == "Failed"
    assert "ZeroDivisionError" in divide["state"]["message"]
    assert "Traceback" in divide["traceback"] and "a / b" in divide["traceback"]
    assert "ZeroDivisionError" in detail["result"]["summary"]
    logs = dashboard.get(f"/api/runs/{broken_run}/logs")["logs"]
    assert any("Traceback" in log["message"] for log in logs), logs


def test_the_api_describes_itself(dashboard: Dashboard) -> None:
    schema = dashboard.get("/api/openapi.json")
    assert {"/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/logs"} <= set(schema["paths"])
    assert dashboard.status("/api/docs") == 404  # its scripts would come from a CDN


def test_unknown_runs_are_404(dashboard: Dashboard) -> None:
    assert dashboard.status("/api/runs/00000000-0000-4000-8000-000000000000") == 404
    assert dashboard.status("/api/runs/00000000-0000-4000-8000-000000000000/logs") == 404
    assert dashboard.status("/api/runs/not-a-uuid") == 422


def test_workers_and_queues(dashboard: Dashboard, diamond_run: str) -> None:
    def every_worker() -> list[dict[str, Any]] | None:
        workers = dashboard.get("/api/workers")["workers"]
        return workers if len(workers) == 3 else None  # a slow reply waits for the next ask

    answered = poll(every_worker, "both workers and the coordinator to answer inspect")
    kinds = sorted(worker["kind"] for worker in answered)
    assert kinds == ["coordinator", "worker", "worker"], answered
    assert all(w["status"] == "online" and w["concurrency"] for w in answered), answered
    assert dashboard.get("/api/workers")["seen_in_runs"], "task runs name their workers"

    queues = {queue["name"]: queue for queue in dashboard.get("/api/queues")["queues"]}
    assert set(queues) == {"celerity", "flows"}
    assert all(q["waiting"] >= 0 and q["reserved"] >= 0 for q in queues.values()), queues


def test_actions_need_the_token(dashboard: Dashboard, broken_run: str) -> None:
    assert dashboard.get("/api/info")["actions_enabled"] is True
    assert dashboard.post(f"/api/runs/{broken_run}/retry")[0] == 401
    assert dashboard.post(f"/api/runs/{broken_run}/retry", token="wrong")[0] == 401

    status, answer = dashboard.post(f"/api/runs/{broken_run}/retry", token=TOKEN)
    assert status == 200, answer

    def failed_again() -> bool:
        run = dashboard.get(f"/api/runs/{broken_run}")["flow_run"]
        return run["run_count"] == 2 and run["state"]["name"] == "Failed"

    poll(failed_again, "the retried run to fail a second time")
    status, answer = dashboard.post(f"/api/runs/{broken_run}/resume", token=TOKEN)
    assert status == 409 and "pause" in answer["detail"].lower(), answer


def test_resume_sends_run_input_to_a_paused_run(
    dashboard: Dashboard, fleet: Fleet, flows_file: Path
) -> None:
    run_id = submit(fleet, f"{flows_file}:gate", "--param", "amount=7", wait=False)
    poll(
        lambda: dashboard.get(f"/api/runs/{run_id}")["flow_run"]["state"]["type"] == "PAUSED",
        "the run to pause",
    )
    status, answer = dashboard.post(f"/api/runs/{run_id}/resume", {"input": {}}, token=TOKEN)
    assert status == 409, answer  # its input lacks "approved"

    status, answer = dashboard.post(
        f"/api/runs/{run_id}/resume", {"input": {"approved": True}}, token=TOKEN
    )
    assert status == 200, answer
    final = poll(
        lambda: (detail := dashboard.get(f"/api/runs/{run_id}"))["flow_run"]["final"] and detail,
        "the resumed run to finish",
    )
    assert final["flow_run"]["state"]["name"] == "Completed"
    assert final["result"]["summary"] == "'7 approved'"


def test_without_a_token_the_dashboard_is_read_only(
    fleet: Fleet, broken_run: str, tmp_path: Path
) -> None:
    read_only = start_dashboard(fleet, tmp_path / "read-only.log", token=None)
    try:
        assert read_only.get("/api/info")["actions_enabled"] is False
        status, answer = read_only.post(f"/api/runs/{broken_run}/retry", token=TOKEN)
        assert status == 403 and "read-only" in answer["detail"], answer
        assert read_only.get(f"/api/runs/{broken_run}")["flow_run"]["id"] == broken_run
    finally:
        stop(read_only.process)
