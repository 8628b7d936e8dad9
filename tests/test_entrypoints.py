"""Flows loaded by entrypoint: ``file.py:func``, ``file.py:Class.method``, ``module.func``.

Also rebuilt from source when the script cannot be imported here (a
dependency missing), their ``@flow`` options read from source, and
``Flow.from_source`` over a code storage.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from engine import Flow
from engine.exceptions import MissingFlowError, ScriptError
from engine.flows import (
    flow,
    load_flow_arguments_from_entrypoint,
    load_flow_from_entrypoint,
    load_function_and_convert_to_flow,
    safe_load_flow_from_entrypoint,
)

PLAIN = """
from engine import flow

@flow(name="barker", description="Says woof")
def dog(times: int = 1) -> str:
    return "woof" * times
"""

METHODS = """
from engine import flow

class Dog:
    @flow
    @staticmethod
    def static_bark():
        return "static woof"

    @flow
    @classmethod
    def class_bark(cls):
        return cls.__name__
"""

MISSING_DEPENDENCY = """
import datetime
from not_installed_here import Missing, DEFAULT_TIMES, get_name
from engine import flow

@flow(description="Says woof")
def dog(when: datetime.date, kind: Missing, times: int = DEFAULT_TIMES, *, loud: Missing = 1):
    return when, kind, times, loud

@flow(name=get_name())
def cat():
    return "meow"

def helper():
    return not_defined_anywhere()

@flow
def calls_missing():
    return helper()
"""


def script(tmp_path: Path, source: str, name: str = "flows.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


class TestLoadFlowFromEntrypoint:
    def test_by_relative_and_absolute_path(self, tmp_path, monkeypatch):
        path = script(tmp_path, PLAIN)
        monkeypatch.chdir(tmp_path)
        for entrypoint in ("flows.py:dog", f"{path.resolve()}:dog"):
            loaded = load_flow_from_entrypoint(entrypoint)
            assert isinstance(loaded, Flow)
            assert loaded.name == "barker"
            assert loaded(2) == "woofwoof"

    def test_class_methods(self, tmp_path):
        path = script(tmp_path, METHODS)
        assert load_flow_from_entrypoint(f"{path}:Dog.static_bark")() == "static woof"
        assert load_flow_from_entrypoint(f"{path}:Dog.class_bark")() == "Dog"

    def test_by_module_path(self, tmp_path, monkeypatch):
        package = tmp_path / "kennel"
        package.mkdir()
        (package / "__init__.py").write_text("")
        script(package, PLAIN, "dogs.py")
        monkeypatch.syspath_prepend(str(tmp_path))
        assert load_flow_from_entrypoint("kennel.dogs.dog")() == "woof"
        assert load_flow_from_entrypoint("kennel.dogs:dog")() == "woof"

    def test_missing_name_and_non_flows(self, tmp_path):
        path = script(tmp_path, PLAIN + "\ndef plain():\n    return 1\n")
        with pytest.raises(MissingFlowError, match="'cat' not found"):
            load_flow_from_entrypoint(f"{path}:cat")
        with pytest.raises(MissingFlowError, match="is not a flow"):
            load_flow_from_entrypoint(f"{path}:plain")

    def test_script_that_cannot_import_is_rebuilt_from_source(self, tmp_path):
        path = script(tmp_path, MISSING_DEPENDENCY)
        loaded = load_flow_from_entrypoint(f"{path}:dog")
        assert loaded.description == "Says woof"
        assert loaded("2024-01-02", "kind")[1:] == ("kind", None, 1)
        with pytest.raises(ScriptError, match="not_installed_here") as raised:
            load_flow_from_entrypoint(f"{path}:dog", use_placeholder_flow=False)
        assert isinstance(raised.value.user_exc, ModuleNotFoundError)

    def test_load_function_and_convert_to_flow(self, tmp_path):
        path = script(tmp_path, PLAIN + "\ndef plain():\n    return 1\n")
        converted = load_function_and_convert_to_flow(f"{path}:plain")
        assert isinstance(converted, Flow) and converted.log_prints is True
        assert converted() == 1
        assert load_function_and_convert_to_flow(f"{path}:dog").name == "barker"
        with pytest.raises(RuntimeError, match="'cat' not found"):
            load_function_and_convert_to_flow(f"{path}:cat")


class TestSafeLoad:
    def test_annotations_and_defaults_that_need_what_is_missing_are_dropped(self, tmp_path):
        path = script(tmp_path, MISSING_DEPENDENCY)
        rebuilt = safe_load_flow_from_entrypoint(f"{path}:dog")
        assert rebuilt is not None
        # datetime is importable, so that annotation is kept (evaluated, not a string)
        parameters = inspect.signature(rebuilt.fn).parameters
        assert parameters["when"].annotation is datetime.date
        assert parameters["kind"].annotation is inspect.Parameter.empty
        assert rebuilt("2024-01-02", "kind")[0].isoformat() == "2024-01-02"

    def test_a_flow_whose_decorator_needs_what_is_missing_is_none(self, tmp_path):
        path = script(tmp_path, MISSING_DEPENDENCY)
        assert safe_load_flow_from_entrypoint(f"{path}:cat") is None

    def test_the_body_still_fails_when_it_runs(self, tmp_path):
        path = script(tmp_path, MISSING_DEPENDENCY)
        rebuilt = safe_load_flow_from_entrypoint(f"{path}:calls_missing")
        with pytest.raises(NameError, match="not_defined_anywhere"):
            rebuilt()

    def test_unknown_object(self, tmp_path):
        path = script(tmp_path, PLAIN)
        with pytest.raises(ValueError, match="Could not find object 'cat'"):
            safe_load_flow_from_entrypoint(f"{path}:cat")

    def test_main_block_does_not_run(self, tmp_path):
        marker = tmp_path / "ran"
        source = PLAIN + f'\nif __name__ == "__main__":\n    open({str(marker)!r}, "w")\n'
        path = script(tmp_path, source)
        assert safe_load_flow_from_entrypoint(f"{path}:dog")() == "woof"
        assert not marker.exists()


class TestFlowArgumentsFromSource:
    def test_literal_and_computed_options(self, tmp_path):
        path = script(
            tmp_path,
            """
            from engine import flow
            version = "1.0"

            @flow(name=f"dog-{version}", retries=2, description="Says woof")
            def dog():
                return "woof"
            """,
        )
        arguments = load_flow_arguments_from_entrypoint(f"{path}:dog")
        assert arguments == {"name": "dog-1.0", "retries": "2", "description": "Says woof"}

    def test_name_falls_back_to_the_function(self, tmp_path, caplog):
        path = script(tmp_path, MISSING_DEPENDENCY)
        with caplog.at_level(logging.WARNING):
            arguments = load_flow_arguments_from_entrypoint(f"{path}:cat")
        assert arguments == {"name": "cat"}
        assert "Failed to parse @flow argument: `name=get_name()`" in caplog.text
        assert load_flow_arguments_from_entrypoint(f"{path}:calls_missing") == {
            "name": "calls-missing"
        }


class CodeStorage:
    """A code storage in the shape Flow.from_source expects: it writes a package."""

    def __init__(self) -> None:
        self.destination = Path.cwd()
        self.pulls = 0

    def set_base_path(self, path: Path) -> None:
        self.destination = path

    async def pull_code(self) -> None:
        self.pulls += 1
        package = self.destination / "pulledpkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "flows.py").write_text(textwrap.dedent(PLAIN))
        (self.destination / "flows.py").write_text(textwrap.dedent(PLAIN))


class TestFromSource:
    def test_by_file_entrypoint(self):
        storage = CodeStorage()
        loaded = Flow.from_source(source=storage, entrypoint="flows.py:dog")
        assert (loaded(), loaded._storage, storage.pulls) == ("woof", storage, 1)
        copied = loaded.with_options(name="copied")
        assert (copied._storage, copied._entrypoint) == (storage, "flows.py:dog")

    def test_by_module_entrypoint_leaves_sys_path_alone(self):
        before = list(sys.path)
        loaded = flow.from_source(source=CodeStorage(), entrypoint="pulledpkg.flows.dog")
        assert sys.path == before
        assert loaded._entrypoint == "pulledpkg.flows.dog"
        assert loaded() == "woof"

    def test_async_code_awaits_it(self):
        async def load() -> Flow:
            return await Flow.from_source(source=CodeStorage(), entrypoint="flows.py:dog")

        assert asyncio.run(load()).name == "barker"

    def test_a_local_folder(self, tmp_path):
        script(tmp_path, PLAIN, "dogs.py")
        for source in (tmp_path, str(tmp_path)):
            loaded = Flow.from_source(source=source, entrypoint="dogs.py:dog")
            assert (loaded(), loaded._storage) == ("woof", source)

    def test_unsupported_source(self, tmp_path):
        for source in (object(), "https://example.com/repo.git", tmp_path / "missing"):
            with pytest.raises(TypeError, match="Unsupported source type"):
                Flow.from_source(source=source, entrypoint="flows.py:dog")


class TestScriptsNamedLikeModules:
    def test_a_script_named_like_a_module_is_sent_by_value(self, tmp_path):
        from engine.utilities.importing import to_reference

        # "json" is taken by the standard library, so the script gets a private name
        path = script(tmp_path, PLAIN, "json.py")
        loaded = load_flow_from_entrypoint(f"{path}:dog")
        assert loaded.fn.__module__.startswith("__celerity_script_")
        assert loaded._entrypoint == f"{path}:dog"
        assert "pickle" in to_reference(loaded)
