"""Helpers the CLI shares: load ``FILE:FUNC`` targets and parse flow parameters."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.exceptions import CelerityException


class LoadError(CelerityException):
    """A ``FILE:FUNC`` target or a parameter could not be loaded; the message says why."""


def split_target(target: str) -> tuple[Path, str]:
    """Split ``"path/to/file.py:func"`` into the file path and the attribute name."""
    # rpartition so that a Windows drive letter ("C:\\x.py:f") stays in the path.
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise LoadError(f"expected FILE:FUNC, got {target!r}")
    return Path(path), name


def load_module_from_path(path: Path) -> ModuleType:
    """Import the Python file at ``path`` as a top-level module named after its stem.

    The file's directory goes first on ``sys.path`` and the module is registered
    under its stem, so its tasks have an import path (``stem.func``) that a
    worker started in the same directory can import.
    """
    path = path.resolve()
    if not path.is_file():
        raise LoadError(f"no such file: {path}")
    directory, name = str(path.parent), path.stem
    if directory not in sys.path:
        sys.path.insert(0, directory)
    existing = sys.modules.get(name)
    if existing is not None:
        return _reuse_module(existing, path)
    return _exec_module(name, path)


def _reuse_module(module: ModuleType, path: Path) -> ModuleType:
    # Importing the same file twice would create twin Flow/Task objects; a
    # different file with the same name would shadow an imported module.
    origin = getattr(module, "__file__", None)
    if origin is None or Path(origin).resolve() != path:
        raise LoadError(
            f"module name {module.__name__!r} of {path} clashes with an imported module; "
            "rename the file"
        )
    return module


def _exec_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_target(target: str) -> Any:
    """Return the object named by ``FILE:FUNC``, importing the file first."""
    path, attr = split_target(target)
    module = load_module_from_path(path)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise LoadError(f"{path} has no attribute {attr!r}") from None


def declared_flow_name(path: Path, function: str) -> str:
    """The name the flow ``function`` in ``path`` will have, read without importing the file.

    A producer does not import the file it submits (the coordinator does), yet
    its run must be listed under the flow's name from the start, the name a
    ``flow run`` of the same file records: ``@flow(name="...")`` when the
    decorator gives a literal name, else the function's name with ``_`` as
    ``-`` (Flow's default). A file that cannot be parsed gets the default.
    """
    default = function.replace("_", "-")
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return default
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            return _decorated_name(node.decorator_list) or default
    return default


def _decorated_name(decorators: list[ast.expr]) -> str | None:
    """The literal ``name=`` given to a ``@flow(...)`` decorator, if any."""
    for decorator in decorators:
        if not isinstance(decorator, ast.Call):
            continue
        func = decorator.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called != "flow":
            continue
        for keyword in decorator.keywords:
            value = keyword.value
            if keyword.arg == "name" and isinstance(value, ast.Constant):
                return value.value if isinstance(value.value, str) else None
    return None


def parse_param_value(raw: str) -> Any:
    """Return ``raw`` decoded as JSON, or ``raw`` itself when it is not JSON.

    >>> parse_param_value("3"), parse_param_value("hello")
    (3, 'hello')
    """
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_params(pairs: Iterable[str], params_json: str | None = None) -> dict[str, Any]:
    """Merge ``--params`` (a JSON object) with ``--param k=v`` pairs; pairs win."""
    params = _parse_params_json(params_json) if params_json else {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise LoadError(f"expected KEY=VALUE, got {pair!r}")
        params[key] = parse_param_value(raw)
    return params


def _parse_params_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"--params is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LoadError("--params must be a JSON object")
    return value
