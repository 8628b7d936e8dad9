"""Stable digests, the same in every process."""

from __future__ import annotations

import hashlib
from pathlib import Path


def stable_hash(*parts: str | bytes) -> str:
    """The MD5 hex digest of ``parts`` (strings UTF-8 encoded); not for security."""
    digest = hashlib.md5(usedforsecurity=False)
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    """A digest of a file's contents (a flow's default version)."""
    return stable_hash(Path(path).read_bytes())
