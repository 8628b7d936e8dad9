"""Generator tasks: values stream to the caller, failed attempts retry (emitting
their values again), the timeout covers the whole attempt, and what the
generator returns is the run's result (``StopIteration.value``)."""

import asyncio
import time

import pytest

from engine import flow, task
from engine.context import TaskRunContext

from . import _helpers as h
from ._side_effects import record, recorded


@task(retries=2)
def emits_then_fails(key):
    record(key, TaskRunContext.get().task_run.id)
    yield 1
    yield 2
    raise ValueError("the generator failed")


@task(retries=1)
def fails_once_then_finishes(key):
    record(key, "attempt")
    yield "a"
    if len(recorded(key)) == 1:
        raise ValueError("first attempt")
    yield "b"


@task(timeout_seconds=0.5)
def stalls_after_first(seconds):
    yield 1
    time.sleep(seconds)  # longer than the timeout
    yield 2


@task
def returns_after_yield():
    yield 1
    return "the return value"


@task(retries=2)
async def async_emits_then_fails(key):
    record(key, "attempt")
    yield 1
    yield 2
    raise ValueError("the async generator failed")


@task(timeout_seconds=0.2)
async def async_stalls_after_first():
    yield 1
    await asyncio.sleep(5)
    yield 2


@flow
def consumes(key):
    values = []
    try:
        for value in emits_then_fails(key):
            values.append(value)
    except ValueError:
        values.append("raised")
    return values


@flow
def consumes_recovering(key):
    return list(fails_once_then_finishes(key))


async def _drain_async(generator):
    values = []
    try:
        async for value in generator:
            values.append(value)
    except ValueError:
        values.append("raised")
    return values


class TestGeneratorRetries:
    def test_a_failed_attempt_retries_and_emits_again(self, key):
        # When a generator task with two retries fails after yielding twice
        values = consumes(key)
        # Then every attempt's values reach the caller, then the last error
        assert values == [1, 2, 1, 2, 1, 2, "raised"]
        (run_id,) = set(recorded(key))
        assert h.types(run_id).count("RUNNING") == 3
        assert h.names(run_id)[-1] == "Failed"

    def test_a_retry_that_succeeds_completes_the_run(self, key):
        assert consumes_recovering(key) == ["a", "a", "b"]
        assert recorded(key) == ["attempt", "attempt"]

    def test_an_async_generator_retries(self, key):
        values = asyncio.run(_drain_async(async_emits_then_fails(key)))
        assert values == [1, 2, 1, 2, 1, 2, "raised"]
        assert len(recorded(key)) == 3


class TestGeneratorTimeouts:
    def test_the_timeout_covers_the_whole_attempt(self):
        values = []
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            for value in stalls_after_first(3):
                values.append(value)
        assert values == [1]
        assert time.monotonic() - started < 2.5

    def test_an_async_generator_times_out(self):
        async def drain():
            values = []
            with pytest.raises(TimeoutError):
                async for value in async_stalls_after_first():
                    values.append(value)
            return values

        assert asyncio.run(drain()) == [1]


class TestGeneratorReturnValue:
    def test_the_return_value_is_surfaced(self):
        generator = returns_after_yield()
        assert next(generator) == 1
        with pytest.raises(StopIteration) as stop:
            next(generator)
        assert stop.value.value == "the return value"

    def test_return_state_is_refused(self):
        with pytest.raises(ValueError, match="generator task must be 'result'"):
            list(returns_after_yield(return_state=True))
