"""HMAC signing of every payload another process will unpickle (messages, results).

A signed payload is ``<hex HMAC-SHA256>.<payload>``; ``verify`` checks the
digest before anything else reads the payload, so a payload nobody with a key
wrote is never parsed or unpickled.

Keys come from ``CELERITY_SIGNING_KEY``, a comma-separated keyring: the first
key signs, every key verifies. Rotating is two restarts: put the new key first
(old ones after) on every process, then drop the old ones once nothing signed
with them is left in flight or in storage.

A fleet (``CELERITY_BROKER_URL`` set) has no default key: ``fleet_signer``
refuses to build one, and every fleet process builds one on start. An embedded
run needs no key from the user: it uses a private key generated on first use
in ``~/.config/celerity/signing-key`` (mode 0600), so that results it writes
to files are read back by a later embedded process of the same user.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config import current_settings
from engine.exceptions import ConfigurationError, SignatureVerificationError

logger = logging.getLogger("celerity.signing")

KEY_ENV = "CELERITY_SIGNING_KEY"
SEPARATOR = b"."
DIGEST_HEX_LENGTH = 64
# Shorter keys are guessable; `celerity key generate` makes 43 characters.
MIN_KEY_LENGTH = 16
LOCAL_KEY_FILE = "signing-key"

NO_KEY = (
    f"{KEY_ENV} is not set: every worker, coordinator and producer of a fleet must share "
    "a secret signing key. Make one with `celerity key generate`, then "
    f"`export {KEY_ENV}=<the key>` for every process of the fleet."
)


class Signer:
    """Signs with the first key of a keyring; verifies with any of its keys.

    Example::

        signer = Signer(["new-key-0123456789", "old-key-0123456789"])
        signer.verify(signer.sign(b"body"))  # b'body'
    """

    def __init__(self, keys: str | bytes | Sequence[str | bytes]) -> None:
        ring = [keys] if isinstance(keys, str | bytes) else list(keys)
        if not ring:
            raise ConfigurationError("A signer needs at least one key.")
        self._keys = [key.encode() if isinstance(key, str) else key for key in ring]

    def sign(self, payload: bytes) -> bytes:
        """``payload`` with the first key's hex digest in front."""
        return _digest(self._keys[0], payload) + SEPARATOR + payload

    def verify(self, signed: bytes, what: str = "A message") -> bytes:
        """The payload if a key of the ring signed it; raises SignatureVerificationError.

        ``what`` names the payload in the error ("Result 3f2a... in redis://...").
        """
        digest, sep, payload = signed.partition(SEPARATOR)
        if not sep or len(digest) != DIGEST_HEX_LENGTH:
            raise SignatureVerificationError(
                f"{what} carries no Celerity signature: it was not written by a Celerity "
                f"process holding {KEY_ENV}."
            )
        if not any(hmac.compare_digest(digest, _digest(key, payload)) for key in self._keys):
            raise SignatureVerificationError(
                f"{what} failed signature verification: tampered, or written with "
                f"another {KEY_ENV}."
            )
        return payload


def _digest(key: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, payload, "sha256").hex().encode()


def generate_key() -> str:
    """A new random key (256 bits, URL-safe text without commas)."""
    return secrets.token_urlsafe(32)


def parse_keyring(text: str) -> list[str]:
    """The keys of a comma-separated ``CELERITY_SIGNING_KEY``, signing key first."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if any(len(key) < MIN_KEY_LENGTH for key in keys):
        raise ConfigurationError(
            f"{KEY_ENV} holds a key shorter than {MIN_KEY_LENGTH} characters, which can be "
            "guessed: make one with `celerity key generate`."
        )
    return keys


def fleet_signer(settings: Any) -> Signer:
    """The signer of a fleet process; raises ConfigurationError when no key is set."""
    text = _key_text(settings)
    if not text:
        raise ConfigurationError(NO_KEY)
    return _keyring_signer(text)


def current_signer() -> Signer:
    """This process's signer: the keyring when set (required with a broker), else the local key."""
    settings = current_settings()
    if _key_text(settings) or settings.broker_url:
        return fleet_signer(settings)
    return _local_signer(str(local_key_path()))


def _key_text(settings: Any) -> str:
    secret = settings.signing_key
    return secret.get_secret_value().strip() if secret is not None else ""


@functools.lru_cache(maxsize=8)
def _keyring_signer(text: str) -> Signer:
    keys = parse_keyring(text)
    if not keys:
        raise ConfigurationError(NO_KEY)
    return Signer(keys)


# --- the local key of embedded runs ----------------------------------------------------------


def local_key_path() -> Path:
    """Where embedded runs keep their key: ``$XDG_CONFIG_HOME/celerity/signing-key``."""
    config_home = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config_home) if os.path.isabs(config_home) else Path.home() / ".config"
    return base / "celerity" / LOCAL_KEY_FILE


@functools.lru_cache(maxsize=4)
def _local_signer(path: str) -> Signer:
    try:
        return Signer(_read_or_create(Path(path)))
    except OSError as exc:
        # A read-only home must not stop an embedded run: sign with a key of this
        # process only. Results it writes to files cannot be read by another process.
        logger.warning(
            "Could not create the local signing key %s (%s); using a key of this process "
            "only. Set %s to share results between processes.", path, exc, KEY_ENV,
        )
        return Signer(generate_key())


def _read_or_create(path: Path) -> str:
    try:
        return _read_private(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(generate_key() + "\n")
        try:
            # A link never replaces: when two processes race, both use the first key.
            os.link(partial, path)
        except FileExistsError:
            pass
    finally:
        partial.unlink(missing_ok=True)
    return _read_private(path)


def _read_private(path: Path) -> str:
    """The key in ``path``, refused when another user could have read or written it."""
    status = path.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise ConfigurationError(
            f"The local signing key {path} must belong to you and be private: "
            f"`chmod 600 {path}` (or delete it to make a new one)."
        )
    key = path.read_text().strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigurationError(f"The local signing key {path} is too short: delete it.")
    return key


__all__ = [
    "KEY_ENV",
    "NO_KEY",
    "Signer",
    "current_signer",
    "fleet_signer",
    "generate_key",
    "local_key_path",
    "parse_keyring",
]
