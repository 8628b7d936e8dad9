"""References to Python objects that another process can load.

An object importable by ``module:qualname`` travels as that path; anything
else (defined in ``__main__``, a closure) travels as cloudpickle bytes.
"""

from __future__ import annotations

import base64
import importlib
import sys
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


def load_import_path(path: str) -> Any:
    """The object named by ``module:qualname``."""
    module_name, _, qualname = path.partition(":")
    obj: Any = sys.modules.get(module_name) or importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def to_reference(obj: Any) -> dict[str, str]:
    """A JSON-friendly reference to ``obj``."""
    path = import_path_of(obj)
    if path is not None:
        return {"import_path": path}
    try:
        payload = cloudpickle.dumps(obj)
    except Exception as exc:  # cloudpickle raises many kinds
        raise SerializationError(f"Cannot send {obj!r} to another process: {exc}") from exc
    return {"pickle": base64.b64encode(payload).decode()}


def from_reference(ref: dict[str, str]) -> Any:
    """Load the object a reference names."""
    if "import_path" in ref:
        return load_import_path(ref["import_path"])
    return cloudpickle.loads(base64.b64decode(ref["pickle"]))
