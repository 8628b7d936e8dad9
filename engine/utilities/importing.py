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

import ast
import base64
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle

from engine.exceptions import ScriptError, SerializationError
from engine.utilities.hashing import stable_hash

# The module name given to a script whose file name is already a module's.
SCRIPT_MODULE_PREFIX = "__celerity_script_"


def import_path_of(obj: Any) -> str | None:
    """``module:qualname`` that imports back to ``obj`` itself, or None."""
    target = getattr(obj, "fn", obj)
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<locals>" in qualname:
        return None
    if module.startswith(SCRIPT_MODULE_PREFIX):  # a name only this process gave the script
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


# --- loading user code by entrypoint ---------------------------------------------------------

_sys_path_lock = threading.Lock()
_DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign)


def load_script_as_module(path: str) -> ModuleType:
    """Run the script at ``path`` as a fresh module; ScriptError wraps what it raises.

    The script's folder and the working directory are importable while it
    runs, so it can import its neighbours.
    """
    if not path.endswith(".py"):
        raise ValueError(f"The provided path does not point to a python file: {path!r}")
    source = Path(path).resolve()
    module_name = source.stem
    if module_name in sys.modules:  # a script named like a module must not replace it
        module_name = f"{SCRIPT_MODULE_PREFIX}{stable_hash(str(source))[:16]}__"
    search = [str(source.parent), os.getcwd()]
    spec = importlib.util.spec_from_file_location(
        module_name, path, submodule_search_locations=search
    )
    if spec is None or spec.loader is None:
        raise ValueError(f"Cannot load {path!r} as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _sys_path_lock, _on_sys_path(search):
            spec.loader.exec_module(module)
    except Exception as exc:
        raise ScriptError(user_exc=exc, path=path) from exc
    return module


@contextmanager
def _on_sys_path(folders: list[str]) -> Iterator[None]:
    saved = list(sys.path)
    sys.path[:0] = folders
    try:
        yield
    finally:
        sys.path[:] = saved


def import_object(import_path: str) -> Any:
    """The object an import path names.

    Forms: ``module.object``, ``module:object``, ``path/to/script.py:object``,
    and any of them with ``Class.attribute`` after the colon.
    """
    if ".py:" in import_path:
        script, object_path = import_path.rsplit(":", 1)
        obj: Any = load_script_as_module(script)
    elif ":" in import_path:
        module_name, object_path = import_path.rsplit(":", 1)
        obj = importlib.import_module(module_name)
    elif "." in import_path:
        module_name, object_path = import_path.rsplit(".", 1)
        obj = importlib.import_module(module_name)
    else:
        raise ValueError(f"Invalid format for object import. Received {import_path!r}.")
    for part in object_path.split("."):
        obj = getattr(obj, part)
    return obj


def safe_load_namespace(source_code: str, filepath: str | None = None) -> dict[str, Any]:
    """What a module's top level defines, as far as it can be run here.

    Imports that fail are skipped, then each top-level class, function and
    assignment is run on its own, skipping those that raise; the
    ``if __name__ == "__main__":`` block never runs. Used to read a flow's
    definition when its script cannot be imported whole (a dependency missing).
    """
    tree = ast.parse(source_code)
    namespace: dict[str, Any] = {"__name__": "celerity_safe_namespace"}
    folders = _script_folders(filepath)
    package = Path(filepath).resolve().parent.name if filepath else None
    with _sys_path_lock, _on_sys_path(folders):
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                _run_import(node, namespace, package)
        for node in tree.body:
            if isinstance(node, _DEFINITIONS):
                _run_quietly(node, namespace)
    return namespace


def _script_folders(filepath: str | None) -> list[str]:
    if not filepath:
        return []
    folder = Path(filepath).resolve().parent
    return [str(folder), str(folder.parent)]


def _run_import(
    node: ast.Import | ast.ImportFrom, namespace: dict[str, Any], package: str | None
) -> None:
    """Bind what one import statement imports; names that cannot be imported are left out."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            try:
                module = importlib.import_module(alias.name)
            except ImportError:
                continue
            if alias.asname:
                namespace[alias.asname] = module
            else:
                top = alias.name.partition(".")[0]
                namespace[top] = sys.modules[top]
        return
    try:
        if node.level:
            if package is None:
                return
            module = importlib.import_module("." * node.level + (node.module or ""), package)
        else:
            module = importlib.import_module(node.module or "")
    except ImportError:
        return
    for alias in node.names:
        if alias.name == "*":
            namespace.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
        elif hasattr(module, alias.name):
            namespace[alias.asname or alias.name] = getattr(module, alias.name)


def _run_quietly(node: ast.stmt, namespace: dict[str, Any]) -> None:
    try:
        module = ast.Module(body=[node], type_ignores=[])
        # dont_inherit: this module's future imports must not apply to user code
        code = compile(module, "<celerity-safe-load>", "exec", dont_inherit=True)
        exec(code, namespace)
    except Exception:  # a definition that needs what is missing is left out
        return
