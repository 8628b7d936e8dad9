"""engine.settings: Prefect's PREFECT_* names and temporary_settings over CeleritySettings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from broker_config.settings import CeleritySettings, reset_settings
from engine import flow, task
from engine.config import current_settings
from engine.settings import (
    PREFECT_API_URL,
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_TASK_DEFAULT_RETRIES,
    UnsupportedSettingError,
    get_current_settings,
    temporary_settings,
)


@pytest.fixture(autouse=True)
def fresh_settings(clean_settings: None) -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()


class TestReading:
    def test_a_prefect_name_reads_its_celerity_field(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_TASK_DEFAULT_RETRIES", "4")
        reset_settings()
        assert PREFECT_TASK_DEFAULT_RETRIES.value() == 4
        assert PREFECT_TASK_DEFAULT_RETRIES.default() == 0

    def test_value_from_reads_the_given_settings(self) -> None:
        settings = CeleritySettings(task_default_retries=2)
        assert PREFECT_TASK_DEFAULT_RETRIES.value_from(settings) == 2

    def test_local_storage_path_is_the_result_path_as_a_path(self, tmp_path: Path) -> None:
        with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path}):
            assert PREFECT_LOCAL_STORAGE_PATH.value() == tmp_path
            assert isinstance(PREFECT_LOCAL_STORAGE_PATH.value() / "x", Path)
            assert current_settings().result_path == str(tmp_path)

    def test_a_server_setting_reads_as_absent(self) -> None:
        assert PREFECT_API_URL.value() is None

    def test_get_current_settings_is_the_one_settings_object(self) -> None:
        assert isinstance(get_current_settings(), CeleritySettings)
        assert get_current_settings() is current_settings()


class TestTemporarySettings:
    def test_updates_apply_inside_the_block_only(self) -> None:
        with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: "3"}) as settings:
            assert PREFECT_TASK_DEFAULT_RETRIES.value() == 3  # coerced like the env var
            assert get_current_settings() is settings
        assert PREFECT_TASK_DEFAULT_RETRIES.value() == 0

    def test_blocks_nest_and_unwind(self) -> None:
        with temporary_settings({PREFECT_TASK_DEFAULT_RETRIES: 1}):
            with temporary_settings({"PREFECT_TASK_DEFAULT_RETRIES": 2}):
                assert PREFECT_TASK_DEFAULT_RETRIES.value() == 2
            assert PREFECT_TASK_DEFAULT_RETRIES.value() == 1

    def test_celerity_field_names_are_keys_too(self) -> None:
        with temporary_settings({"worker_concurrency": 9}):
            assert current_settings().worker_concurrency == 9

    def test_other_values_are_kept(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_DEFAULT_QUEUE", "mine")
        reset_settings()
        with temporary_settings({PREFECT_TASK_DEFAULT_RETRIES: 1}):
            assert current_settings().default_queue == "mine"

    def test_set_defaults_does_not_override_a_set_value(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CELERITY_TASK_DEFAULT_RETRIES", "4")
        reset_settings()
        with temporary_settings(set_defaults={PREFECT_TASK_DEFAULT_RETRIES: 1}):
            assert PREFECT_TASK_DEFAULT_RETRIES.value() == 4
        with temporary_settings(set_defaults={"PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS": 2}):
            assert current_settings().task_default_retry_delay_seconds == 2

    def test_restore_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_TASK_DEFAULT_RETRIES", "4")
        reset_settings()
        with temporary_settings(restore_defaults={PREFECT_TASK_DEFAULT_RETRIES}):
            assert PREFECT_TASK_DEFAULT_RETRIES.value() == 0

    def test_a_wrong_value_is_a_validation_error(self) -> None:
        with pytest.raises(ValidationError):
            with temporary_settings({PREFECT_TASK_DEFAULT_RETRIES: "many"}):
                pass

    def test_task_runs_on_the_thread_runner_see_the_block(self) -> None:
        @task
        def read_retries() -> int:
            return int(PREFECT_TASK_DEFAULT_RETRIES.value())

        @flow
        def reader() -> list[int]:
            return [read_retries(), read_retries.submit().result()]

        with temporary_settings({PREFECT_TASK_DEFAULT_RETRIES: 5}):
            assert reader() == [5, 5]


class TestUnsupported:
    def test_setting_a_server_setting_names_it(self) -> None:
        with pytest.raises(UnsupportedSettingError, match="PREFECT_API_URL"):
            with temporary_settings({PREFECT_API_URL: "http://localhost:4200/api"}):
                pass

    def test_setting_it_to_what_it_is_is_allowed(self) -> None:
        with temporary_settings({PREFECT_API_URL: None}):
            assert PREFECT_API_URL.value() is None

    def test_any_prefect_name_imports_and_fails_on_use(self) -> None:
        from engine.settings import PREFECT_SOMETHING_CELERITY_LACKS  # type: ignore[attr-defined]

        with pytest.raises(UnsupportedSettingError, match="PREFECT_SOMETHING_CELERITY_LACKS"):
            PREFECT_SOMETHING_CELERITY_LACKS.value()
        with pytest.raises(UnsupportedSettingError, match="PREFECT_SOMETHING_CELERITY_LACKS"):
            with temporary_settings({PREFECT_SOMETHING_CELERITY_LACKS: 1}):
                pass

    def test_profiles_say_where_settings_come_from(self) -> None:
        from engine.settings import Profile  # type: ignore[attr-defined]

        with pytest.raises(UnsupportedSettingError, match="celerity.toml"):
            Profile(name="test", settings={})

    def test_other_names_are_attribute_errors(self) -> None:
        import engine.settings

        with pytest.raises(AttributeError):
            engine.settings.not_a_setting  # noqa: B018
