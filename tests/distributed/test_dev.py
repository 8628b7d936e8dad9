"""``celerity dev``: a local Redis, workers and a coordinator, all stopped by SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from workers.dev import redis_answers

from .fleet import fleet_environment

START_SECONDS = 30
EXPORT = re.compile(r"^export CELERITY_BROKER_URL=(redis://127\.0\.0\.1:(\d+)/0)$", re.M)


def wait_for_url(log: Path, dev: subprocess.Popen) -> re.Match[str]:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        found = EXPORT.search(log.read_text(errors="replace"))
        if found:
            return found
        assert dev.poll() is None, log.read_text(errors="replace")
        time.sleep(0.1)
    raise AssertionError(f"celerity dev printed no URL:\n{log.read_text(errors='replace')}")


def processes_with(marker: str) -> list[int]:
    """Pids whose environment contains ``marker`` (Linux /proc)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_dev_runs_a_flow_and_stops_everything(tmp_path: Path, flows_dir: Path) -> None:
    log = tmp_path / "dev.log"
    env = fleet_environment("unused", [flows_dir])
    del env["CELERITY_BROKER_URL"]
    with open(log, "wb") as out:
        dev = subprocess.Popen([*_celerity(), "dev", "-w", "1"], env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        found = wait_for_url(log, dev)
        url, port = found.group(1), int(found.group(2))
        submitted = subprocess.run(
            [*_celerity(), "flow", "submit", f"{flows_dir / 'dist_flows.py'}:pipeline",
             "--param", "x=3", "--wait", "--timeout", "60"],
            env={**env, "CELERITY_BROKER_URL": url}, capture_output=True, text=True, timeout=90,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr + log.read_text()
        assert "Result: 25" in submitted.stdout

        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=30) == 0, log.read_text()
        assert not redis_answers(port)
        assert processes_with(f"CELERITY_BROKER_URL={url}\0") == []
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()


def _celerity() -> list[str]:
    import sys

    return [sys.executable, "-m", "celerity"]
