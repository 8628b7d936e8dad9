"""File systems usable as result storage, named as in the seed API (``prefect.filesystems``).

Example::

    @flow(result_storage=LocalFileSystem(basepath="/shared/results"))
    def pipeline(): ...

The seed API saves storages as server-side "blocks". Celerity has no server:
``save(name)`` names a storage in this process, so that settings and
``LocalFileSystem.load(name)`` can refer to it as ``"local-file-system/<name>"``.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any, ClassVar

from engine.exceptions import MissingResult
from engine.results import FileSystemResultStorage, ResultStorage
from engine.utilities.asyncutils import async_dispatch

DEFAULT_BASEPATH = "~/.celerity/storage"

_saved: dict[str, ResultStorage] = {}
_saved_lock = threading.Lock()


class _Named:
    """``save`` / ``load`` by name, for storages that ported code saves as blocks."""

    _block_type_slug: ClassVar[str]
    _block_document_id: uuid.UUID | None = None
    _block_document_name: str | None = None

    def _register(self, name: str | None, overwrite: bool) -> uuid.UUID:
        slug = f"{self._block_type_slug}/{name}" if name else None
        with _saved_lock:
            if slug and slug in _saved and not overwrite and _saved[slug] is not self:
                raise ValueError(f"A storage named {name!r} is already saved; pass overwrite=True.")
            self._block_document_id = self._block_document_id or uuid.uuid4()
            self._block_document_name = name
            if slug:
                _saved[slug] = self  # type: ignore[assignment]
        return self._block_document_id

    async def _save(
        self, name: str | None = None, is_anonymous: bool = False, overwrite: bool = False
    ) -> uuid.UUID:
        """Save under ``name`` (or anonymously); returns the id it was given."""
        return self._register(None if is_anonymous else name, overwrite)

    async def asave(self, name: str | None = None, overwrite: bool = False) -> uuid.UUID:
        """``save`` for coroutines."""
        return self._register(name, overwrite)

    @async_dispatch(asave)
    def save(self, name: str | None = None, overwrite: bool = False) -> uuid.UUID:
        """Name this storage in this process, so that settings and ``load`` can find it."""
        return self._register(name, overwrite)

    @classmethod
    async def aload(cls, name: str) -> Any:
        """``load`` for coroutines."""
        return load_saved_storage(f"{cls._block_type_slug}/{name}")

    @classmethod
    def load(cls, name: str, **_options: Any) -> Any:
        """The storage saved under ``name`` in this process."""
        return load_saved_storage(f"{cls._block_type_slug}/{name}")


def load_saved_storage(slug: str) -> ResultStorage:
    """The storage saved as ``"<type>/<name>"`` (e.g. ``"local-file-system/results"``)."""
    with _saved_lock:
        found = _saved.get(slug)
    if found is None:
        raise ValueError(f"No storage is saved as {slug!r} in this process.")
    return found


class LocalFileSystem(_Named, FileSystemResultStorage):
    """Results as files under ``basepath``; every process that reads them must see it."""

    _block_type_slug = "local-file-system"

    def __init__(self, basepath: str | Path | None = None, **_options: Any) -> None:
        super().__init__(basepath or DEFAULT_BASEPATH)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileSystemResultStorage) and other.basepath == self.basepath

    def __hash__(self) -> int:
        return hash(self.basepath)

    def __repr__(self) -> str:
        return f"LocalFileSystem(basepath={str(self.basepath)!r})"


class NullFileSystem(_Named, ResultStorage):
    """A storage that keeps nothing: writes are dropped, reads find nothing."""

    _block_type_slug = "null-file-system"
    url = "null://"

    def write_bytes(self, key: str, payload: bytes) -> None:
        """Dropped."""

    def read_bytes(self, key: str) -> bytes:
        raise MissingResult(f"Nothing is stored under {key!r}: a NullFileSystem keeps nothing.")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NullFileSystem)

    def __hash__(self) -> int:
        return hash(NullFileSystem)

    def __repr__(self) -> str:
        return "NullFileSystem()"


__all__ = ["LocalFileSystem", "NullFileSystem", "load_saved_storage"]
