"""A worker started with ``CELERITY_WORKER_METRICS_PORT`` serves Prometheus metrics of its
own: the jobs it ran, those running and reserved now, its process's resources."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from distributed.fleet import Fleet
from prometheus_client.parser import text_string_to_metric_families

from workers.dev import free_port

from .conftest import poll, stop, submit


def scrape(port: int) -> dict[str, Any]:
    """The families a worker's endpoint serves, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def jobs_run(port: int) -> dict[tuple[str, str], float]:
    """``celerity_worker_jobs_total`` by (node, task)."""
    family = scrape(port)["celerity_worker_jobs"]
    return {
        (s.labels["node"], s.labels["task"]): s.value
        for s in family.samples
        if s.name == "celerity_worker_jobs_total"
    }


def test_a_worker_serves_its_own_metrics(fleet: Fleet, flows_file: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**fleet.env, "CELERITY_WORKER_METRICS_PORT": str(port)}
    # A worker of its own on a queue only it consumes: the metered task runs there.
    argv = fleet.command("worker", "start", "-q", "metered", "-c", "1", "--pool", "threads")
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        families = poll(lambda: scrape(port), "the worker's metrics endpoint")
        for name in ("celerity_worker_active_jobs", "celerity_worker_reserved_jobs"):
            (sample,) = families[name].samples
            assert sample.labels["node"].startswith("celerity-worker-") and sample.value == 0
        assert families["process_resident_memory_bytes"].samples[0].value > 0

        submit(fleet, f"{flows_file}:metered_flow", "--param", "n=3")

        ran = poll(lambda: jobs_run(port), "a job counted")
        assert all(node.startswith("celerity-worker-") for node, _ in ran)
        assert any("run_tasks" in task for _, task in ran), ran
        assert sum(ran.values()) >= 1
    finally:
        stop(worker)
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Worker metrics on http://" in log_text, log_text[-2000:]
