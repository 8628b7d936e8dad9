"""Reading a flow's definition from its source file without importing it whole.

An entrypoint names a flow by file (``path/to/flows.py:my_flow``, or
``path/to/flows.py:MyClass.my_flow``) or by module (``package.flows.my_flow``).
When the file cannot be imported here (a dependency is missing), the flow can
still be rebuilt from its source: ``safe_load_flow`` runs what of the module
it can and drops the annotations and defaults that need what is missing;
``decorator_arguments`` reads the ``@flow(...)`` options.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.utilities.importing import safe_load_namespace

logger = logging.getLogger("celerity.entrypoints")

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

# The @flow options read from source by default: those whose values are plain data.
DEFAULT_ARGUMENTS = frozenset(
    {
        "name",
        "version",
        "retries",
        "retry_delay_seconds",
        "description",
        "timeout_seconds",
        "validate_parameters",
        "persist_result",
        "cache_result_in_memory",
        "log_prints",
    }
)


@dataclass
class Definition:
    """Where an entrypoint's object is defined: its node, the file's source, the path."""

    node: FunctionNode | ast.ClassDef
    source: str
    parts: list[str]  # the attribute path after the file or module, e.g. ["Dog", "bark"]
    path: str | None  # the script's path; None for a module entrypoint

    @property
    def function(self) -> FunctionNode | None:
        """The function (or the method of a class) the entrypoint names, if found."""
        if isinstance(self.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return self.node
        if len(self.parts) < 2:
            return None
        return next(
            (
                stmt
                for stmt in self.node.body
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                and stmt.name == self.parts[1]
            ),
            None,
        )


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    """``(file or module, attribute path)``; the last colon splits a file entrypoint."""
    if ":" in entrypoint:
        path, _, name = entrypoint.rpartition(":")
    else:
        path, _, name = entrypoint.rpartition(".")
    return path, name


def find_definition(entrypoint: str) -> Definition:
    """Parse the entrypoint's source and find its top object; ValueError if absent."""
    location, object_path = split_entrypoint(entrypoint)
    if ":" in entrypoint:
        script: str | None = location
        source = Path(location).read_text()
    else:
        script = None
        spec = importlib.util.find_spec(location)
        if spec is None or not spec.origin:
            raise ValueError(f"Could not find module {location!r}")
        source = Path(spec.origin).read_text()
    parts = object_path.split(".")
    node = next(
        (
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and node.name == parts[0]
        ),
        None,
    )
    if node is None:
        raise ValueError(f"Could not find object {parts[0]!r} in {location!r}")
    return Definition(node=node, source=source, parts=parts, path=script)


def safe_load_flow(entrypoint: str) -> Any:
    """The flow an entrypoint names, rebuilt from source as far as possible; None if not.

    Raises ValueError when the source does not define the named object.
    """
    definition = find_definition(entrypoint)
    namespace = safe_load_namespace(definition.source, filepath=definition.path)
    if definition.parts[0] in namespace:
        obj: Any = namespace[definition.parts[0]]
        for part in definition.parts[1:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    function = definition.function
    if function is None:
        return None
    return _load_sanitized(function, namespace)


def _evaluates(node: ast.expr, namespace: dict[str, Any]) -> bool:
    try:
        eval(
            compile(ast.Expression(node), "<celerity-entrypoint>", "eval", dont_inherit=True),
            namespace,
        )
    except Exception:  # it needs something this process does not have
        return False
    return True


def _none_like(node: ast.AST) -> ast.Constant:
    return ast.Constant(value=None, lineno=node.lineno, col_offset=node.col_offset)  # type: ignore[attr-defined]


def _sanitize(function: FunctionNode, namespace: dict[str, Any]) -> None:
    """Drop annotations that cannot be evaluated here; defaults that cannot become None."""
    arguments = function.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    every += [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
    for arg in every:
        if arg.annotation is not None and not _evaluates(arg.annotation, namespace):
            arg.annotation = None
    arguments.defaults = [
        default if _evaluates(default, namespace) else _none_like(default)
        for default in arguments.defaults
    ]
    arguments.kw_defaults = [
        default if default is not None and _evaluates(default, namespace) else _none_like(function)
        for default in arguments.kw_defaults
    ]
    if function.returns is not None and not _evaluates(function.returns, namespace):
        function.returns = None


def _load_sanitized(function: FunctionNode, namespace: dict[str, Any]) -> Any:
    """Define ``function`` (decorators included) without what cannot be evaluated here."""
    _sanitize(function, namespace)
    try:
        module = ast.Module(body=[function], type_ignores=[])
        # dont_inherit: this module's ``from __future__ import annotations`` must
        # not turn the user's annotations into strings.
        exec(compile(module, "<celerity-entrypoint>", "exec", dont_inherit=True), namespace)
    except Exception as exc:  # a decorator argument needs what is missing
        logger.debug("Could not define %s from its source: %s", function.name, exc)
        return None
    return namespace.get(function.name)


def decorator_arguments(entrypoint: str, wanted: frozenset[str] | set[str]) -> dict[str, Any]:
    """The ``@flow(...)`` options named in ``wanted``, as strings, read from source.

    An option whose value cannot be evaluated here is logged and left out; a
    missing ``name`` falls back to the function's name, as ``@flow`` does.
    """
    definition = find_definition(entrypoint)
    function = definition.function or definition.node
    namespace: dict[str, Any] | None = None
    found: dict[str, Any] = {}
    for keyword in _flow_keywords(function):
        if keyword.arg is None or keyword.arg not in wanted:
            continue
        if isinstance(keyword.value, ast.Constant):
            found[keyword.arg] = str(keyword.value.value)
            continue
        if namespace is None:  # loaded once, only when an option needs evaluating
            namespace = safe_load_namespace(definition.source, filepath=definition.path)
        text = ast.get_source_segment(definition.source, keyword.value) or ""
        try:
            found[keyword.arg] = str(eval(text.replace("\n", ""), namespace))
        except Exception:  # the value needs something this process does not have
            logger.warning(
                "Failed to parse @flow argument: `%s=%s`; ignoring it and falling back to "
                "the default.",
                keyword.arg,
                text,
            )
    if "name" in wanted and "name" not in found:
        found["name"] = function.name.replace("_", "-")
    return found


def _flow_keywords(function: FunctionNode | ast.ClassDef) -> list[ast.keyword]:
    keywords: list[ast.keyword] = []
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and _decorator_name(decorator.func) == "flow":
            keywords.extend(decorator.keywords)
    return keywords


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""
