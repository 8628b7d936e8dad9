"""Commands that need Redis say so clearly, without tracebacks."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from celerity.cli import main
from workers.dev import free_port

REDIS_COMMANDS = [
    ["runs", "ls"],
    ["runs", "show", "00000000-0000-0000-0000-000000000000"],
    ["runs", "logs", "00000000-0000-0000-0000-000000000000"],
    ["flow", "submit", "x.py:f"],
    ["worker", "start"],
    ["coordinator", "start"],
]


@pytest.mark.parametrize("args", REDIS_COMMANDS, ids=" ".join)
def test_without_a_broker_url_commands_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)

    assert result.exit_code == 2, result.output
    assert "CELERITY_BROKER_URL is not set" in result.output


@pytest.mark.parametrize("args", REDIS_COMMANDS, ids=" ".join)
def test_a_dead_redis_is_one_line(args: list[str], monkeypatch: pytest.MonkeyPatch,
                                  tmp_path) -> None:
    monkeypatch.setenv("CELERITY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    if args[:2] == ["flow", "submit"]:
        (tmp_path / "x.py").write_text("")
        args = ["flow", "submit", f"{tmp_path / 'x.py'}:f"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Cannot reach"), result.output
    assert "Traceback" not in result.output


def test_flow_run_against_a_dead_redis_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path) -> None:
    monkeypatch.setenv("CELERITY_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    (tmp_path / "dead_redis_flows.py").write_text(
        "from engine import flow\n\n\n@flow\ndef noop():\n    return 1\n"
    )

    result = CliRunner().invoke(main, ["flow", "run", f"{tmp_path / 'dead_redis_flows.py'}:noop"])

    assert result.exit_code == 1, result.output
    assert result.output.strip().startswith("Error: Cannot reach the run store at redis://")
    assert "Traceback" not in result.output
