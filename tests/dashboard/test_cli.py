"""``celerity dashboard`` refuses to start without a fleet to show."""

from __future__ import annotations

from click.testing import CliRunner
from redis_server import free_port

from celerity.cli import main


def test_without_a_broker_url_it_says_how_to_set_one() -> None:
    result = CliRunner().invoke(main, ["dashboard"])

    assert result.exit_code == 2
    assert "CELERITY_BROKER_URL is not set" in result.output


def test_an_unreachable_broker_is_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setenv("CELERITY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")

    result = CliRunner().invoke(main, ["dashboard"])

    assert result.exit_code == 1
    assert "Cannot reach the broker" in result.output
    assert "Traceback" not in result.output
