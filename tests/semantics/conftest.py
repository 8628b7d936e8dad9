"""Fixtures for the semantics suite: every test runs on both runners.

``thread``: the embedded default (thread pool, in-memory store).
``celery``: the same test against a real redis-server and two real
``celerity worker`` processes (prefork), through CeleryTaskRunner.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", params=["thread", "celery"])
def runner_mode(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Which runner the semantics run on; for ``celery`` a worker fleet runs meanwhile."""
    if request.param == "thread":
        yield "thread"
        return
    from distributed.fleet import running_fleet

    server = request.getfixturevalue("redis_server")
    server.start()
    log_path = tmp_path_factory.mktemp("semantics-fleet") / "fleet.log"
    with running_fleet(
        server.url, log_path, workers=2, concurrency=2, pythonpath=[TESTS_DIR]
    ) as fleet:
        request.config._celerity_semantics_url = server.url  # type: ignore[attr-defined]
        request.config._celerity_fleet = fleet  # type: ignore[attr-defined]
        yield "celery"


@pytest.fixture(autouse=True)
def engine_runner(
    runner_mode: str,
    clean_settings: None,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """Point settings and the process store at the runner under test."""
    from process_store import fresh_process_store

    from broker_config.settings import reset_settings

    if runner_mode == "celery":
        monkeypatch.setenv("CELERITY_BROKER_URL", request.config._celerity_semantics_url)  # type: ignore[attr-defined]
    reset_settings()
    try:
        with fresh_process_store():
            yield runner_mode
    finally:
        reset_settings()


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A unique side-effect key for one test (see ``_side_effects``)."""
    return f"{request.node.name}-{uuid.uuid4().hex}"
