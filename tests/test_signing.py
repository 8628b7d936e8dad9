"""Signing: keyrings and rotation, signed results, the local key of embedded runs, the CLI.

Nothing here needs a fleet; the fleet-level forgeries are in
``tests/distributed/test_forgery.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker_config.settings import reset_settings
from celerity.cli import main
from engine.exceptions import ConfigurationError, SignatureVerificationError
from engine.results import (
    INLINE,
    FileSystemResultStorage,
    MemoryResultStorage,
    RedisResultStorage,
    ResultRef,
    read_result,
)
from engine.signing import Signer, current_signer, fleet_signer, local_key_path, parse_keyring

REPO_ROOT = Path(__file__).resolve().parents[1]
OLD_KEY = "old-key-0123456789abcdef"
NEW_KEY = "new-key-0123456789abcdef"


class MarkerOnUnpickle:
    """Creates a file when unpickled: proof that a forged payload was executed."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def use_key(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Set (or, with None, unset) CELERITY_SIGNING_KEY for this test and re-read settings."""
    if value is None:
        monkeypatch.delenv("CELERITY_SIGNING_KEY", raising=False)
    else:
        monkeypatch.setenv("CELERITY_SIGNING_KEY", value)
    reset_settings()


class TestSigner:
    def test_keeps_the_envelope_wire_format(self) -> None:
        # Given a payload signed with one key
        signed = Signer(NEW_KEY).sign(b'{"v":3}')
        # Then it is <hex HMAC-SHA256>.<payload>, as envelopes always were
        expected = hmac.new(NEW_KEY.encode(), b'{"v":3}', hashlib.sha256).hexdigest()
        assert signed == f"{expected}.".encode() + b'{"v":3}'
        assert Signer(NEW_KEY).verify(signed) == b'{"v":3}'

    def test_rotation_new_key_signs_old_key_still_verifies(self) -> None:
        # Given a payload signed before the rotation, with the old key alone
        before = Signer(OLD_KEY).sign(b"written before")
        # When the keyring becomes "new,old"
        ring = Signer(parse_keyring(f"{NEW_KEY},{OLD_KEY}"))
        # Then the old payload still verifies ...
        assert ring.verify(before) == b"written before"
        # ... and what the ring signs now is signed with the new key
        after = ring.sign(b"written after")
        assert Signer(NEW_KEY).verify(after) == b"written after"
        with pytest.raises(SignatureVerificationError):
            Signer(OLD_KEY).verify(after)

    def test_dropped_key_no_longer_verifies(self) -> None:
        before = Signer(OLD_KEY).sign(b"old")
        with pytest.raises(SignatureVerificationError, match="another CELERITY_SIGNING_KEY"):
            Signer(NEW_KEY).verify(before, "Result abc")

    @pytest.mark.parametrize(
        "payload",
        [b"no signature at all", b"0" * 64 + b".forged", b"abc.def"],
        ids=["unsigned", "wrong-digest", "short-digest"],
    )
    def test_unsigned_or_forged_payloads_are_rejected(self, payload: bytes) -> None:
        with pytest.raises(SignatureVerificationError, match="^A message"):
            Signer(NEW_KEY).verify(payload)

    def test_one_changed_byte_is_rejected(self) -> None:
        signed = Signer(NEW_KEY).sign(b"amount=10")
        with pytest.raises(SignatureVerificationError, match="failed signature verification"):
            Signer(NEW_KEY).verify(signed.replace(b"10", b"99"))


class TestKeyring:
    def test_comma_separated_list_with_spaces(self) -> None:
        assert parse_keyring(f" {NEW_KEY} , {OLD_KEY},") == [NEW_KEY, OLD_KEY]

    def test_short_keys_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="celerity key generate"):
            parse_keyring(f"{NEW_KEY},short")

    def test_a_fleet_has_no_default_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Given a broker URL and no key
        use_key(monkeypatch, None)
        monkeypatch.setenv("CELERITY_BROKER_URL", "redis://127.0.0.1:1/0")
        reset_settings()
        # Then nothing signs or verifies, and the error says how to make a key
        with pytest.raises(ConfigurationError, match="`celerity key generate`"):
            current_signer()
        from broker_config.settings import get_settings

        with pytest.raises(ConfigurationError, match="CELERITY_SIGNING_KEY is not set"):
            fleet_signer(get_settings())

    def test_create_app_refuses_without_a_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from workers.app import create_app

        use_key(monkeypatch, None)
        monkeypatch.setenv("CELERITY_BROKER_URL", "redis://127.0.0.1:1/0")
        reset_settings()
        with pytest.raises(ConfigurationError, match="celerity key generate"):
            create_app()


class TestSignedResults:
    """Every storage signs on write and verifies before unpickling."""

    @pytest.fixture(params=["memory", "file", "redis"])
    def storage(self, request: pytest.FixtureRequest, tmp_path: Path):
        if request.param == "memory":
            yield MemoryResultStorage()
        elif request.param == "file":
            yield FileSystemResultStorage(tmp_path / "results")
        else:
            storage = RedisResultStorage(request.getfixturevalue("redis_url"))
            yield storage
            storage.client.close()

    def test_values_round_trip_and_are_stored_signed(self, storage) -> None:
        ref = storage.write("x" * 2000)
        assert ref.storage == storage.url
        assert storage.read(ref) == "x" * 2000
        assert storage.read_many([ref, ref]) == ["x" * 2000] * 2
        # What the storage holds is signed with this process's key
        assert current_signer().verify(storage.read_bytes(ref.key)).startswith(b"\x80")

    @pytest.mark.parametrize("forger", ["unsigned", "other-key"])
    def test_an_overwritten_result_is_refused_unread(self, storage, forger, tmp_path) -> None:
        # Given a stored result that someone overwrote with a pickle that runs code
        marker = tmp_path / f"{forger}-was-unpickled"
        ref = storage.write("y" * 2000)
        evil = pickle.dumps(MarkerOnUnpickle(marker))
        if forger == "other-key":
            evil = Signer("the-attackers-own-key-0123").sign(evil)
        storage.write_bytes(ref.key, evil)
        # When it is read, alone or with others
        for read in (lambda: storage.read(ref), lambda: storage.read_many([ref])):
            with pytest.raises(SignatureVerificationError) as caught:
                read()
            # Then the error names the result and the reason, and nothing ran
            assert f"Result {ref.key} in {storage.url}" in str(caught.value)
        assert not marker.exists()

    def test_storage_errors_do_not_show_a_redis_password(self) -> None:
        storage = MemoryResultStorage()
        storage.url = "redis://:hunter2@h:1/0#celerity"
        assert storage.describe("k") == "Result k in redis://:****@h:1/0#celerity"

    def test_inline_refs_are_signed_and_verified(self, tmp_path: Path) -> None:
        # Given a small value, carried inside its reference
        ref = MemoryResultStorage().write(42)
        assert ref.storage == INLINE
        assert read_result(ref) == 42
        # When the reference is replaced by a forged pickle (as by editing the run store)
        marker = tmp_path / "inline-was-unpickled"
        forged = ResultRef(
            storage=INLINE, key=base64.b64encode(pickle.dumps(MarkerOnUnpickle(marker))).decode()
        )
        # Then reading it fails with the reason, and nothing ran
        with pytest.raises(SignatureVerificationError, match="^An inline result carries no"):
            read_result(forged)
        assert not marker.exists()

    def test_results_written_before_a_rotation_are_read_after_it(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        storage = FileSystemResultStorage(tmp_path)
        use_key(monkeypatch, OLD_KEY)
        ref = storage.write("z" * 2000)
        use_key(monkeypatch, f"{NEW_KEY},{OLD_KEY}")
        assert storage.read(ref) == "z" * 2000
        use_key(monkeypatch, NEW_KEY)
        with pytest.raises(SignatureVerificationError, match="another CELERITY_SIGNING_KEY"):
            storage.read(ref)


class TestLocalKey:
    """Embedded runs (no broker URL) need no key: a private one is made on first use."""

    @pytest.fixture
    def no_key(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
        use_key(monkeypatch, None)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        return tmp_path / "config" / "celerity" / "signing-key"

    def test_made_on_first_use_private_and_kept(self, no_key: Path) -> None:
        signer = current_signer()
        assert local_key_path() == no_key
        assert stat.S_IMODE(no_key.stat().st_mode) == 0o600
        assert stat.S_IMODE(no_key.parent.stat().st_mode) == 0o700
        assert Signer(no_key.read_text().strip()).verify(signer.sign(b"v")) == b"v"

    def test_file_results_are_read_by_a_later_embedded_process(
        self, no_key: Path, tmp_path: Path
    ) -> None:
        # Given a result written to files by this embedded process
        ref = FileSystemResultStorage(tmp_path / "results").write(list(range(500)))
        # When another embedded process (no key set, same user) reads it
        code = (
            "from engine.results import ResultRef, read_result\n"
            f"print(sum(read_result(ResultRef(storage={ref.storage!r}, key={ref.key!r}))))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELERITY_")}
        env["PYTHONPATH"] = str(REPO_ROOT)
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        # Then it verifies with the same local key
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(sum(range(500)))

    def test_a_key_file_others_can_read_is_refused(self, no_key: Path) -> None:
        current_signer()
        no_key.chmod(0o644)
        from engine.signing import _local_signer

        _local_signer.cache_clear()
        with pytest.raises(ConfigurationError, match="chmod 600"):
            current_signer()


class TestKeyCommands:
    def test_key_generate_prints_a_new_key_and_how_to_use_it(self) -> None:
        first = CliRunner().invoke(main, ["key", "generate"])
        second = CliRunner().invoke(main, ["key", "generate"])
        assert first.exit_code == 0
        key = first.stdout.strip()
        # The key alone on stdout (so that `$(celerity key generate)` works) ...
        assert len(key) >= 43 and "," not in key and "\n" not in key
        assert parse_keyring(key) == [key]
        assert second.stdout.strip() != key
        # ... and how to export and rotate it on stderr
        assert f"export CELERITY_SIGNING_KEY={key}\n" in first.stderr
        assert f"export CELERITY_SIGNING_KEY={key},<current key>" in first.stderr

    @pytest.mark.parametrize(
        "args",
        [
            ("worker", "start"),
            ("coordinator", "start"),
            ("flow", "submit", "flows.py:f"),
            ("flow", "run", "flows.py:f"),
        ],
        ids=["worker", "coordinator", "submit", "flow-run"],
    )
    def test_fleet_commands_refuse_to_start_without_a_key(
        self, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
    ) -> None:
        use_key(monkeypatch, None)
        monkeypatch.setenv("CELERITY_BROKER_URL", "redis://127.0.0.1:1/0")
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code == 2, result.output
        assert "CELERITY_SIGNING_KEY is not set" in result.output
        assert "celerity key generate" in result.output

    def test_a_worker_process_without_a_key_exits_with_the_remedy(self) -> None:
        # Given a shell with a broker URL and no signing key
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELERITY_")}
        env.update(CELERITY_BROKER_URL="redis://127.0.0.1:1/0", PYTHONPATH=str(REPO_ROOT))
        # When a worker is started
        done = subprocess.run(
            [sys.executable, "-m", "celerity", "worker", "start"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        # Then it refuses, saying how to make a key, without a traceback
        assert done.returncode != 0
        assert "celerity key generate" in done.stderr
        assert "Traceback" not in done.stderr


class TestDevKey:
    def test_celerity_dev_makes_a_key_and_prints_its_export_line(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from workers.dev import _announce, fleet_env

        # Given a shell without a key, the dev fleet gets a new random one ...
        monkeypatch.delenv("CELERITY_SIGNING_KEY")
        env = fleet_env("redis://127.0.0.1:1/0")
        key = env["CELERITY_SIGNING_KEY"]
        assert parse_keyring(key) == [key]
        assert fleet_env("redis://127.0.0.1:1/0")["CELERITY_SIGNING_KEY"] != key
        # ... and says how to use it from another shell
        said: list[str] = []
        _announce(env, 1, said.append)
        assert f"export CELERITY_SIGNING_KEY={key}" in said

    def test_celerity_dev_keeps_an_exported_key(self, signing_key: str) -> None:
        from workers.dev import _announce, fleet_env

        env = fleet_env("redis://127.0.0.1:1/0")
        assert env["CELERITY_SIGNING_KEY"] == signing_key
        said: list[str] = []
        _announce(env, 1, said.append)
        assert not any("CELERITY_SIGNING_KEY" in line for line in said)  # the shell has it
