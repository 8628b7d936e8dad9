"""The celerity CLI: version, config show, flow run, and the FILE:FUNC helpers."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from celerity.cli import main
from celerity.loading import LoadError, load_target, parse_params, split_target

ADD_FLOW = """\
from engine import flow


@flow
def add(x: int, y: int = 1):
    return x + y
"""

FAILING_FLOW = """\
from engine import flow


@flow
def boom():
    raise ValueError("boom")
"""

STATES_FLOW = """\
from engine import flow, task


@task
def one():
    return 1


@task
def fail():
    raise ValueError("no")


@flow
def states():
    return [one(return_state=True), fail(return_state=True)]
"""

TERMINATED_FLOW = """\
import os
import signal
from pathlib import Path

from engine import flow


def note(flow, flow_run, state):
    (Path(__file__).parent / "crashed-hook").write_text(state.name)


@flow(on_crashed=[note])
def terminated():
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def write_flow(tmp_path: Path, stem: str, source: str) -> Path:
    path = tmp_path / f"{stem}.py"
    path.write_text(source)
    return path


class TestTopLevel:
    def test_version(self) -> None:
        code, output = invoke("--version")
        assert code == 0
        assert version("celerity") in output

    def test_help_lists_groups(self) -> None:
        code, output = invoke("--help")
        assert code == 0
        assert "config" in output and "flow" in output


class TestConfigShow:
    def test_table_masks_the_broker_password(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_BROKER_URL", "redis://:hunter2@h:1/0")
        code, output = invoke("config", "show")
        assert code == 0
        assert "hunter2" not in output
        assert "CELERITY_BROKER_URL" in output

    def test_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_SIGNING_KEY", "s3cret")
        monkeypatch.setenv("CELERITY_WORKER_CONCURRENCY", "9")
        code, output = invoke("config", "show", "--json")
        assert code == 0
        values = json.loads(output)
        assert values["worker_concurrency"] == 9
        assert values["signing_key"] == "****"
        assert "s3cret" not in output

    def test_invalid_settings_are_reported(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_WORKER_CONCURRENCY", "many")
        code, output = invoke("config", "show")
        assert code == 1
        assert "invalid settings" in output


class TestLoading:
    def test_split_target(self) -> None:
        assert split_target("dir/flows.py:main") == (Path("dir/flows.py"), "main")
        with pytest.raises(LoadError):
            split_target("flows.py")

    def test_params_merge_and_param_wins(self) -> None:
        params = parse_params(["x=3", "name=alice", "items=[1, 2]"], '{"x": 1, "y": 2}')
        assert params == {"x": 3, "y": 2, "name": "alice", "items": [1, 2]}

    @pytest.mark.parametrize(
        ("pairs", "params_json"), [(["novalue"], None), ([], "[1]"), ([], "{bad")]
    )
    def test_bad_params_raise(self, pairs: list[str], params_json: str | None) -> None:
        with pytest.raises(LoadError):
            parse_params(pairs, params_json)

    def test_loaded_module_is_importable_by_name(self, tmp_path: Path) -> None:
        path = write_flow(tmp_path, "celerity_cli_plain", "def hello():\n    return 'hi'\n")
        func = load_target(f"{path}:hello")
        assert func() == "hi"
        assert func.__module__ == "celerity_cli_plain"
        import celerity_cli_plain  # type: ignore[import-not-found]

        assert celerity_cli_plain.hello is func

    def test_missing_attribute(self, tmp_path: Path) -> None:
        path = write_flow(tmp_path, "celerity_cli_noattr", "x = 1\n")
        with pytest.raises(LoadError, match="no attribute 'nope'"):
            load_target(f"{path}:nope")


class TestFlowRun:
    def test_completed_flow_prints_state_and_result(self, tmp_path: Path) -> None:
        path = write_flow(tmp_path, "celerity_cli_add", ADD_FLOW)
        code, output = invoke("flow", "run", f"{path}:add", "--param", "x=40", "-p", "y=2")
        assert code == 0, output
        assert "Completed" in output
        assert "42" in output

    def test_params_json(self, tmp_path: Path) -> None:
        path = write_flow(tmp_path, "celerity_cli_add_json", ADD_FLOW)
        code, output = invoke("flow", "run", f"{path}:add", "--params", '{"x": 5}')
        assert code == 0, output
        assert "6" in output

    def test_wrong_parameters_exit_2_without_traceback(self, tmp_path: Path) -> None:
        path = write_flow(tmp_path, "celerity_cli_add_bad", ADD_FLOW)
        code, output = invoke("flow", "run", f"{path}:add", "--param", "z=1")
        assert code == 2, output
        assert "wrong parameters" in output
        assert "Traceback" not in output

    def test_failed_flow_exits_1(self, tmp_path: Path) -> None:
        path = write_flow(tmp_path, "celerity_cli_boom", FAILING_FLOW)
        code, output = invoke("flow", "run", f"{path}:boom")
        assert code == 1, output
        assert "Failed" in output
        assert "boom" in output

    def test_a_state_result_prints_on_one_line(self, tmp_path: Path) -> None:
        """A flow that returns its tasks' states ends with those states as its result:
        each printed as its one-line repr, not as a page of state fields."""
        path = write_flow(tmp_path, "celerity_cli_states", STATES_FLOW)
        code, output = invoke("flow", "run", f"{path}:states")
        assert code == 1, output
        result = output.split("Result: ", 1)[1]
        assert result.startswith("[Completed(message=None, type=COMPLETED, result=1), Failed(")
        assert "state_details" not in output

    def test_sigterm_ends_the_run_crashed_and_exits_143(self, tmp_path: Path) -> None:
        """`kill PID` of a `flow run` process: the run ends Crashed (its hook runs),
        the command says so in one line and exits 128 + 15, without a traceback."""
        path = write_flow(tmp_path, "celerity_cli_sigterm", TERMINATED_FLOW)
        result = CliRunner().invoke(main, ["flow", "run", f"{path}:terminated"])
        assert result.exit_code == 143, result.output
        assert "Stopped by signal 15: the flow run ended Crashed." in result.output
        assert "Traceback" not in result.output
        assert (tmp_path / "crashed-hook").read_text() == "Crashed"

    def test_missing_file_exits_2(self, tmp_path: Path) -> None:
        code, output = invoke("flow", "run", f"{tmp_path / 'absent.py'}:main")
        assert code == 2
        assert "no such file" in output


class TestSettingTraps:
    @pytest.mark.parametrize("args", [["runs", "ls"], ["config", "show"], ["worker", "start"]])
    def test_a_malformed_url_is_one_clear_line(
        self, monkeypatch: pytest.MonkeyPatch, args: list[str]
    ) -> None:
        monkeypatch.setenv("CELERITY_BROKER_URL", "rediss//:hunter2@cache.example:6380/0")

        code, output = invoke(*args)

        assert code == 1
        assert output.strip() == (
            "Error: invalid settings: CELERITY_BROKER_URL='rediss//:****@cache.example:6380/0' "
            "is not a Redis URL: expected redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS) "
            "or unix:///PATH"
        )

    def test_a_malformed_store_url_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_STORE_URL", "127.0.0.1:6379")

        code, output = invoke("config", "show")

        assert code == 1 and "CELERITY_STORE_URL='127.0.0.1:6379' is not a Redis URL" in output

    def test_an_unknown_variable_is_an_error_naming_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CELERITY_BROKR_URL", "redis://127.0.0.1:6379/0")

        code, output = invoke("config", "show")

        assert code == 1
        assert "unknown setting CELERITY_BROKR_URL in the environment" in output
        assert "did you mean CELERITY_BROKER_URL?" in output

    def test_variables_read_by_name_are_not_unknown(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        config = tmp_path / "celerity.toml"
        config.write_text('default_queue = "from-file"\n')
        monkeypatch.setenv("CELERITY_CONFIG_FILE", str(config))
        monkeypatch.setenv("CELERITY_LOGGING_HANDLERS_CONSOLE_LEVEL", "DEBUG")
        monkeypatch.setenv("CELERITY_STORE_URL", "memory://")

        code, output = invoke("config", "show", "--json")

        assert code == 0, output
        assert json.loads(output)["default_queue"] == "from-file"
