"""Stable digests of files and code, the same in every process."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import CodeType
from typing import Any


def stable_hash(*parts: str | bytes) -> str:
    """The MD5 hex digest of ``parts`` (strings UTF-8 encoded); not for security."""
    digest = hashlib.md5(usedforsecurity=False)
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    """A digest of a file's contents (a flow's default version)."""
    return stable_hash(Path(path).read_bytes())


def code_digest(code: CodeType) -> str:
    """A digest of a function's compiled code and where it is defined, stable across processes.

    Built from the qualified name, first line, bytecode, names and constants
    (nested functions included), so two copies of one body defined in two
    places differ. Not the file path, which depends on where the code is
    installed. A frozenset constant is written in sorted order, since its
    order follows string hashing, which differs between processes.
    """
    where = (getattr(code, "co_qualname", code.co_name), code.co_firstlineno)
    return stable_hash(repr((where, _code_fields(code))))


def _code_fields(code: CodeType) -> tuple[Any, ...]:
    return (code.co_code, code.co_names, code.co_varnames, tuple(map(_const, code.co_consts)))


def _const(value: Any) -> Any:
    if isinstance(value, CodeType):
        return _code_fields(value)
    if isinstance(value, frozenset):
        return ("frozenset", sorted(map(repr, value)))
    if isinstance(value, tuple):
        return tuple(map(_const, value))
    return repr(value)
