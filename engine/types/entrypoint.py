"""How a flow's entrypoint is written (``prefect.types.entrypoint``)."""

from __future__ import annotations

from enum import Enum


class EntrypointType(Enum):
    """An entrypoint is ``path/to/file.py:func`` or ``package.module:func``."""

    FILE_PATH = "file_path"
    MODULE_PATH = "module_path"


__all__ = ["EntrypointType"]
