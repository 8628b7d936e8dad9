"""Settings: defaults, environment, TOML file, masking, routing and Celery config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from broker_config.celery_config import (
    ENVELOPE_CONTENT_TYPE,
    ENVELOPE_SERIALIZER,
    celery_config,
)
from broker_config.queues import declared_queues, route_for
from broker_config.settings import (
    CeleritySettings,
    get_settings,
    mask_url,
    masked_settings,
    reset_settings,
)


class TestSources:
    def test_defaults_are_embedded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("CELERITY_SIGNING_KEY")  # set for the whole test session
        settings = CeleritySettings()
        assert settings.broker_url is None
        assert settings.effective_store_url is None
        assert settings.runner == "auto"
        # No default key: a fleet must set one, embedded runs use a private local key
        assert settings.signing_key is None

    def test_every_field_is_described(self) -> None:
        for name, field in CeleritySettings.model_fields.items():
            assert field.description, name

    def test_environment_overrides_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELERITY_BROKER_URL", "redis://h:1/0")
        monkeypatch.setenv("CELERITY_WORKER_CONCURRENCY", "7")
        monkeypatch.setenv("CELERITY_TASK_ROUTES", '{"io": "io-queue"}')
        settings = CeleritySettings()
        assert settings.broker_url == "redis://h:1/0"
        assert settings.worker_concurrency == 7
        assert settings.task_routes == {"io": "io-queue"}

    def test_store_url_defaults_to_broker_url(self) -> None:
        assert CeleritySettings(broker_url="redis://b/0").effective_store_url == "redis://b/0"
        both = CeleritySettings(broker_url="redis://b/0", store_url="redis://s/1")
        assert both.effective_store_url == "redis://s/1"

    def test_named_toml_file_is_read(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "conf.toml"
        path.write_text('key_prefix = "from-file"\nworker_pool = "threads"\n')
        monkeypatch.setenv("CELERITY_CONFIG_FILE", str(path))
        settings = CeleritySettings()
        assert settings.key_prefix == "from-file"
        assert settings.worker_pool == "threads"

    def test_environment_wins_over_toml(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "conf.toml"
        path.write_text('key_prefix = "from-file"\n')
        monkeypatch.setenv("CELERITY_CONFIG_FILE", str(path))
        monkeypatch.setenv("CELERITY_KEY_PREFIX", "from-env")
        assert CeleritySettings().key_prefix == "from-env"

    def test_local_celerity_toml_is_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "celerity.toml").write_text("task_batch_size = 7\n")
        monkeypatch.chdir(tmp_path)
        assert CeleritySettings().task_batch_size == 7

    def test_missing_named_file_is_an_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CELERITY_CONFIG_FILE", str(tmp_path / "absent.toml"))
        with pytest.raises(FileNotFoundError, match="CELERITY_CONFIG_FILE"):
            CeleritySettings()

    def test_unknown_toml_key_is_rejected(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "conf.toml"
        path.write_text('brokr_url = "redis://typo"\n')
        monkeypatch.setenv("CELERITY_CONFIG_FILE", str(path))
        with pytest.raises(ValidationError, match="brokr_url"):
            CeleritySettings()

    def test_invalid_values_are_rejected(self) -> None:
        with pytest.raises(ValidationError):
            CeleritySettings(worker_concurrency=0)
        with pytest.raises(ValidationError):
            CeleritySettings(runner="nope")


class TestCache:
    def test_get_settings_is_cached_until_reset(self, monkeypatch: pytest.MonkeyPatch) -> None:
        first = get_settings()
        monkeypatch.setenv("CELERITY_KEY_PREFIX", "changed")
        assert get_settings() is first
        reset_settings()
        assert get_settings().key_prefix == "changed"


class TestMasking:
    @pytest.mark.parametrize(
        ("url", "masked"),
        [
            ("redis://:pw@host:6379/0", "redis://:****@host:6379/0"),
            ("rediss://user:pw@host/1", "rediss://user:****@host/1"),
            ("redis://host:6379/0", "redis://host:6379/0"),
            ("redis://user@host/0", "redis://user@host/0"),
        ],
    )
    def test_mask_url(self, url: str, masked: str) -> None:
        assert mask_url(url) == masked

    def test_masked_settings_hides_secrets(self) -> None:
        settings = CeleritySettings(broker_url="redis://:hunter2@h:1/0", signing_key="s3cret")
        values = masked_settings(settings)
        assert "hunter2" not in str(values)
        assert "s3cret" not in str(values)
        assert values["broker_url"] == "redis://:****@h:1/0"
        assert values["effective_store_url"] == "redis://:****@h:1/0"
        assert values["signing_key"] == "****"


class TestRouting:
    settings = CeleritySettings(task_routes={"io": "io-queue", "gpu": "gpu-queue"})

    def test_explicit_queue_wins(self) -> None:
        assert route_for("mine", ["io"], self.settings) == "mine"

    def test_first_tag_with_a_rule_wins(self) -> None:
        assert route_for(None, ["cpu", "gpu", "io"], self.settings) == "gpu-queue"

    def test_default_queue_otherwise(self) -> None:
        assert route_for(None, ["cpu"], self.settings) == "celerity"
        assert route_for(None, [], self.settings) == "celerity"

    def test_routed_queues_are_declared(self) -> None:
        names = [queue.name for queue in declared_queues(self.settings)]
        assert names == ["celerity", "flows", "io-queue", "gpu-queue"]


class TestCeleryConfig:
    def test_reliable_delivery(self) -> None:
        config = celery_config(CeleritySettings(broker_url="redis://h:1/0"))
        assert config["broker_url"] == "redis://h:1/0"
        assert config["task_acks_late"] is True
        assert config["task_reject_on_worker_lost"] is True
        assert config["worker_prefetch_multiplier"] == 1
        assert config["result_backend"] is None
        assert config["task_ignore_result"] is True

    def test_only_envelopes_are_accepted(self) -> None:
        config = celery_config(CeleritySettings())
        assert config["task_serializer"] == ENVELOPE_SERIALIZER
        assert config["accept_content"] == [ENVELOPE_CONTENT_TYPE]

    def test_transport_options_follow_settings(self) -> None:
        settings = CeleritySettings(
            socket_timeout=3.5, health_check_interval=5, remote_control=True
        )
        config = celery_config(settings)
        options = config["broker_transport_options"]
        assert options["socket_timeout"] == 3.5
        assert options["health_check_interval"] == 5
        assert options["visibility_timeout"] > 0
        assert config["worker_enable_remote_control"] is True

    def test_keys_are_known_to_celery(self) -> None:
        from celery.app.defaults import NAMESPACES, flatten

        known = {name for name, _ in flatten(NAMESPACES)}
        assert set(celery_config(CeleritySettings())) <= known

    def test_celery_app_accepts_the_config(self) -> None:
        from celery import Celery

        app = Celery("config-check", set_as_current=False)
        app.conf.update(celery_config(CeleritySettings(broker_url="redis://127.0.0.1:1/0")))
        assert app.conf.task_default_queue == "celerity"
        assert [q.name for q in app.conf.task_queues] == ["celerity", "flows"]


def test_every_setting_is_in_the_readme_settings_tables():
    """The README's settings tables name every CELERITY_* variable the settings take."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    settings_section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    missing = [
        f"CELERITY_{name.upper()}"
        for name in CeleritySettings.model_fields
        if f"| `CELERITY_{name.upper()}` |" not in settings_section
    ]
    assert missing == []
