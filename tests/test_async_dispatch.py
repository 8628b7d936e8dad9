"""``async_dispatch``: one name with a sync and an async implementation (issue 8)."""

import asyncio
import inspect

import pytest

from engine.utilities.asyncutils import async_dispatch, is_in_async_context


async def _alookup(key, suffix=""):
    return f"async {key}{suffix}"


@async_dispatch(_alookup)
def lookup(key, suffix=""):
    """Look a key up."""
    return f"sync {key}{suffix}"


class TestDispatch:
    def test_sync_caller_runs_the_sync_function(self):
        assert lookup("a", suffix="!") == "sync a!"

    def test_async_caller_gets_the_async_coroutine(self):
        async def caller():
            pending = lookup("b")
            assert inspect.iscoroutine(pending)
            return await pending

        assert asyncio.run(caller()) == "async b"

    def test_sync_flag_overrides_the_context(self):
        async def caller():
            return lookup("c", _sync=True)

        assert asyncio.run(caller()) == "sync c"
        assert asyncio.run(lookup("d", _sync=False)) == "async d"

    def test_keeps_the_sync_functions_name_and_exposes_the_twin(self):
        assert lookup.__name__ == "lookup" and lookup.__doc__ == "Look a key up."
        assert lookup.aio is _alookup

    def test_async_implementation_must_be_a_coroutine_function(self):
        with pytest.raises(TypeError, match="async function"):
            async_dispatch(lambda: None)


class TestAsyncContext:
    def test_no_loop_is_sync(self):
        assert not is_in_async_context()

    def test_a_running_loop_outside_runs_is_async(self):
        async def caller():
            return is_in_async_context()

        assert asyncio.run(caller())
