"""File systems usable as result storage, named as in the seed API (``prefect.filesystems``).

Example::

    @flow(result_storage=LocalFileSystem(basepath="/shared/results"))
    def pipeline(): ...
"""

from __future__ import annotations

from pathlib import Path

from engine.results import FileSystemResultStorage

DEFAULT_BASEPATH = "~/.celerity/storage"


class LocalFileSystem(FileSystemResultStorage):
    """Results as files under ``basepath``; every process that reads them must see it."""

    def __init__(self, basepath: str | Path | None = None) -> None:
        super().__init__(basepath or DEFAULT_BASEPATH)


__all__ = ["LocalFileSystem"]
