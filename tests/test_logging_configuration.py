"""engine.logging.configuration: the dictConfig file, its substitutions and overrides."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import MagicMock

import pytest

from broker_config.settings import reset_settings
from engine.exceptions import ConfigurationError
from engine.logging import configuration
from engine.logging.configuration import (
    DEFAULT_LOGGING_SETTINGS_PATH,
    ensure_logging_setup,
    load_logging_config,
    setup_logging,
)
from engine.logging.handlers import RunStoreHandler, SafeStreamHandler
from engine.settings import (
    PREFECT_DEBUG_MODE,
    PREFECT_LOGGING_EXTRA_LOGGERS,
    PREFECT_LOGGING_LEVEL,
    PREFECT_LOGGING_SETTINGS_PATH,
    temporary_settings,
)


@pytest.fixture(autouse=True)
def fresh_settings(clean_settings: None) -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def dict_config(monkeypatch: pytest.MonkeyPatch) -> MagicMock:
    """dictConfig replaced, and the process's applied configuration forgotten for the test."""
    mock = MagicMock()
    monkeypatch.setattr("logging.config.dictConfig", mock)
    monkeypatch.setattr(configuration, "PROCESS_LOGGING_CONFIG", {})
    return mock


def _write(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


class TestLoad:
    def test_the_default_takes_the_level_setting(self) -> None:
        with temporary_settings({PREFECT_LOGGING_LEVEL: "warning"}):
            config = load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)
        assert config["loggers"]["celerity"]["level"] == "WARNING"
        assert config["disable_existing_loggers"] is False
        assert "root" not in config  # the application's root logger is its own

    def test_debug_mode_logs_at_debug(self) -> None:
        with temporary_settings({PREFECT_LOGGING_LEVEL: "ERROR", PREFECT_DEBUG_MODE: True}):
            config = load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)
        assert config["loggers"]["celerity"]["level"] == "DEBUG"

    def test_settings_are_named_by_env_var_or_prefect_name(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "l.json",
            {"a": "${CELERITY_DEFAULT_QUEUE}", "b": "${PREFECT_TASK_DEFAULT_RETRIES}"},
        )
        assert load_logging_config(path) == {"a": "celerity", "b": "0"}

    def test_an_unknown_name_is_an_error_naming_it(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "l.json", {"a": "${NO_SUCH_THING}"})
        with pytest.raises(ConfigurationError, match="NO_SUCH_THING"):
            load_logging_config(path)

    def test_environment_overrides_values_and_lists(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = _write(
            tmp_path / "l.json",
            {"handlers": {"h": {"level": 0}}, "loggers": {"x.y": {"handlers": ["h"]}}, "z": 1},
        )
        monkeypatch.setenv("CELERITY_LOGGING_HANDLERS_H_LEVEL", "DEBUG")
        monkeypatch.setenv("CELERITY_LOGGING_LOGGERS_X_Y_HANDLERS", "h,k")
        config = load_logging_config(path)
        assert config["handlers"]["h"]["level"] == "DEBUG"
        assert config["loggers"]["x.y"]["handlers"] == ["h", "k"]
        assert config["z"] == 1

    def test_a_file_that_is_not_a_mapping_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "l.json"
        path.write_text("[1, 2]")
        with pytest.raises(ConfigurationError, match="mapping"):
            load_logging_config(path)


class TestSetup:
    def test_first_whole_then_incremental(self, dict_config: MagicMock) -> None:
        setup_logging()
        setup_logging()
        first, second = (call.args[0] for call in dict_config.call_args_list)
        assert first["incremental"] is False and second["incremental"] is True

    def test_ensure_sets_up_once(self, dict_config: MagicMock) -> None:
        ensure_logging_setup()
        ensure_logging_setup()
        dict_config.assert_called_once()

    def test_the_settings_path_when_it_exists(self, tmp_path: Path, dict_config: MagicMock) -> None:
        mine = _write(tmp_path / "mine.json", {"version": 1})
        with temporary_settings({PREFECT_LOGGING_SETTINGS_PATH: mine}):
            setup_logging()
        with temporary_settings({PREFECT_LOGGING_SETTINGS_PATH: tmp_path / "absent.json"}):
            setup_logging(incremental=False)
        first, second = (call.args[0] for call in dict_config.call_args_list)
        assert first == {"version": 1, "incremental": False}
        assert second == {
            **load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH),
            "incremental": False,
        }

    def test_extra_loggers_get_the_run_store_handler(self, dict_config: MagicMock) -> None:
        extra = logging.getLogger("celerity.extra")
        handler = RunStoreHandler()
        extra.addHandler(handler)
        outside = logging.getLogger("outside-library")
        try:
            with temporary_settings({PREFECT_LOGGING_EXTRA_LOGGERS: "outside-library, other"}):
                assert PREFECT_LOGGING_EXTRA_LOGGERS.value() == ["outside-library", "other"]
                setup_logging()
            assert handler in outside.handlers
        finally:
            extra.removeHandler(handler)
            outside.removeHandler(handler)


class TestSafeStreamHandler:
    def test_a_closed_stream_drops_the_record(self, capsys: pytest.CaptureFixture[str]) -> None:
        stream = io.StringIO()
        stream.close()
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "dropped", (), None)
        SafeStreamHandler(stream).handle(record)
        assert "closed file" not in capsys.readouterr().err

    def test_an_open_stream_is_written(self) -> None:
        stream = io.StringIO()
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "kept", (), None)
        SafeStreamHandler(stream).handle(record)
        assert "kept" in stream.getvalue()
