"""A real fleet for distributed tests: N ``celerity worker`` processes and a coordinator.

Example::

    with running_fleet(redis_url, tmp_path / "fleet.log", pythonpath=[flows_dir]) as fleet:
        ...  # submit flow runs; on failure, show fleet.log_tail()

The processes share one process group; leaving the block terminates them
(SIGTERM, then SIGKILL after a grace period) and kills whatever is left in the
group, such as prefork pool children and flow run processes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from signing_keys import SESSION_SIGNING_KEY

from workers.dev import ProcessGroup, start_fleet

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
STOP_TIMEOUT_SECONDS = 5.0


def fleet_environment(
    redis_url: str, pythonpath: Iterable[Path | str] = (), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """os.environ without outer ``CELERITY_*`` settings, plus the broker URL, the session's
    signing key and PYTHONPATH; ``extra`` wins over all of them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERITY_")}
    paths = [*map(str, pythonpath), str(REPO_ROOT), env.get("PYTHONPATH", "")]
    env.update(
        CELERITY_BROKER_URL=redis_url,
        CELERITY_SIGNING_KEY=SESSION_SIGNING_KEY,
        PYTHONPATH=os.pathsep.join(p for p in paths if p),
        PYTHONUNBUFFERED="1",
        COLUMNS="200",  # rich tables printed by CLI subprocesses must not fold ids
    )
    env.update(extra or {})
    return env


@dataclass
class Fleet:
    """A running fleet: its processes, environment and combined log file."""

    group: ProcessGroup
    env: dict[str, str]
    log_path: Path

    def log_tail(self, lines: int = 80) -> str:
        """The last lines the fleet's processes wrote, for assertion messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def command(self, *args: str) -> list[str]:
        """The argv for ``celerity ARGS`` with the test interpreter."""
        return [sys.executable, "-m", "celerity", *args]


@contextmanager
def running_fleet(
    redis_url: str,
    log_path: Path,
    *,
    workers: int = 2,
    concurrency: int = 2,
    pool: str = "prefork",
    pythonpath: Iterable[Path | str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Fleet]:
    """Start ``workers`` workers and one coordinator against ``redis_url``; stop them on exit."""
    environment = fleet_environment(redis_url, pythonpath, env)
    group = ProcessGroup()
    with open(log_path, "ab") as log:
        try:
            start_fleet(group, environment, workers, ("-c", str(concurrency), "--pool", pool), log)
            yield Fleet(group, environment, log_path)
        finally:
            group.stop(timeout=STOP_TIMEOUT_SECONDS)


@contextmanager
def session_fleet(
    redis_server: Any, tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any
) -> Iterator[Fleet]:
    """A fleet on the session's Redis (started again if a test stopped it), logging to a
    fresh directory; the tests package is importable by its workers unless told otherwise."""
    redis_server.start()
    log_path = tmp_path_factory.mktemp(name) / "fleet.log"
    options.setdefault("pythonpath", [TESTS_DIR])
    with running_fleet(redis_server.url, log_path, **options) as fleet:
        yield fleet


def use_broker(monkeypatch: pytest.MonkeyPatch, url: str, **extra: str) -> None:
    """Point this process's settings at ``url`` (plus ``CELERITY_*`` extras) for one test.

    A store this test already built for other settings is closed; the next use
    builds one for these.
    """
    from broker_config.settings import reset_settings
    from engine.store import set_store

    monkeypatch.setenv("CELERITY_BROKER_URL", url)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    stale = set_store(None)
    if stale is not None:
        stale.close()
