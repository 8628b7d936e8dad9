"""References to Python objects that another process can load.

An object importable by ``module:qualname`` travels as that path, with the
module's file beside it; anything else (defined in ``__main__``, a closure)
travels as cloudpickle bytes.

The file is a fallback for a process whose ``sys.path`` lacks the module's
root (a worker started from another directory, a pytest module imported by
its rootdir): if the import by name fails, the root the file implies is put
on ``sys.path`` and the import is tried once more, by the same name, so that
the object loaded is the one the sender meant.
"""

from __future__ import annotations

import base64
import importlib
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from engine.exceptions import SerializationError


def import_path_of(obj: Any) -> str | None:
    """``module:qualname`` that imports back to ``obj`` itself, or None."""
    target = getattr(obj, "fn", obj)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<locals>" in qualname:
        return None
    try:
        found = load_import_path(f"{module}:{qualname}")
    except Exception:  # any import failure means "not importable"
        return None
    return f"{module}:{qualname}" if found is obj else None


def load_import_path(path: str, file: str | None = None) -> Any:
    """The object named by ``module:qualname``; ``file`` is the module's source, if known."""
    module_name, _, qualname = path.partition(":")
    obj: Any = sys.modules.get(module_name) or _import_module(module_name, file)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _import_module(module_name: str, file: str | None) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        root = _import_root(module_name, file)
        missing = exc.name or ""
        if root is None or not module_name.startswith(missing) or root in sys.path:
            raise
    sys.path.append(root)
    return importlib.import_module(module_name)


def _import_root(module_name: str, file: str | None) -> str | None:
    """The directory that makes ``module_name`` importable from ``file``, if it exists."""
    if not file:
        return None
    source = Path(file)
    depth = module_name.count(".") + (1 if source.stem == "__init__" else 0)
    if len(source.parents) <= depth:
        return None
    root = source.parents[depth]
    return str(root) if root.is_dir() else None


def module_file(obj: Any) -> str | None:
    """The source file of the module that defines ``obj`` (None for built-ins)."""
    module = sys.modules.get(getattr(getattr(obj, "fn", obj), "__module__", None) or "")
    return getattr(module, "__file__", None)


def to_reference(obj: Any) -> dict[str, str]:
    """A JSON-friendly reference to ``obj``."""
    path = import_path_of(obj)
    if path is not None:
        file = module_file(obj)
        return {"import_path": path, "file": file} if file else {"import_path": path}
    try:
        payload = cloudpickle.dumps(obj)
    except Exception as exc:  # cloudpickle raises many kinds
        raise SerializationError(f"Cannot send {obj!r} to another process: {exc}") from exc
    return {"pickle": base64.b64encode(payload).decode()}


def from_reference(ref: dict[str, str]) -> Any:
    """Load the object a reference names."""
    if "import_path" in ref:
        return load_import_path(ref["import_path"], ref.get("file"))
    return cloudpickle.loads(base64.b64decode(ref["pickle"]))
