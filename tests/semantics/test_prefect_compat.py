"""Code written for Prefect 3 ports by changing the import root: options, signatures, names."""

import pytest

from engine import flow, task
from engine.exceptions import (
    CelerityException,
    ParameterBindError,
    PausedRun,
    PrefectException,
    SignatureMismatchError,
    UnfinishedRun,
)


@task
def varargs_task(first, *rest, scale=1, **named):
    return [first, *rest], scale, named


@flow
def varargs_flow(first: int, *rest, **named):
    inline = varargs_task(first, *rest, scale=2, flag=True)
    submitted = varargs_task.submit(first, *rest, scale=3).result()
    return inline, submitted, named


@task(
    result_serializer="json",
    result_storage_key="value-{parameters[x]}.pickle",
    cache_result_in_memory=False,
    persist_result=False,
)
def prefect_options_task(x):
    return x + 1


@flow(result_serializer="pickle", cache_result_in_memory=True)
def prefect_options_flow(x: int):
    return prefect_options_task.submit(x).result() + prefect_options_task(x)


class TestSignatures:
    def test_varargs_and_varkw_pass_through_tasks_and_flows(self):
        inline, submitted, named = varargs_flow(1, 2, 3, extra="e")
        assert inline == ([1, 2, 3], 2, {"flag": True})
        assert submitted == ([1, 2, 3], 3, {})
        assert named == {"extra": "e"}


class TestPrefectOptions:
    def test_result_options_are_accepted_and_exposed(self):
        assert prefect_options_task.result_serializer == "json"
        assert prefect_options_task.result_storage_key == "value-{parameters[x]}.pickle"
        assert prefect_options_task.cache_result_in_memory is False
        assert prefect_options_flow.result_serializer == "pickle"
        assert prefect_options_task.with_options(result_serializer="pickle").result_serializer == (
            "pickle"
        )
        assert prefect_options_flow(1) == 4


class TestExceptionNames:
    def test_seed_names_exist(self):
        assert PrefectException is CelerityException
        assert issubclass(SignatureMismatchError, ParameterBindError)
        assert issubclass(PausedRun, UnfinishedRun)

    def test_bind_errors_are_type_errors(self):
        with pytest.raises(TypeError):
            varargs_task()
