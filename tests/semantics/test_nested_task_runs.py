"""Task runs called inline inside another task run: their cache records wait for
the outer run, as a nested transaction's records do — written if it completes,
dropped if it fails."""

from engine import flow, task

from ._side_effects import record, recorded


@task(cache_key_fn=lambda context, parameters: f"nested-cache:{parameters['key']}")
def inner(key, x):
    record(key, x)
    return x * 2


@task
def outer(key, fail):
    first = inner(key, 1, return_state=True)
    second = inner(key, 2, return_state=True)
    if fail:
        raise ValueError("the outer run fails")
    return first.name, second.name


@flow
def nested_then_again(key, fail=False):
    state = outer(key, fail, return_state=True)
    after = inner(key, 3, return_state=True)
    return state.result(raise_on_failure=False), after.name, after.result()


class TestNestedCacheRecords:
    def test_records_are_written_when_the_outer_run_completes(self, key):
        inside, after_name, after_value = nested_then_again(key)
        # Inside the outer run neither call is served from the cache
        assert inside == ("Completed", "Completed")
        # Once it completed, the record is there: a later call is Cached
        assert after_name == "Cached"
        assert after_value == 4  # the last record written inside: inner(key, 2)
        assert recorded(key) == [1, 2]

    def test_records_are_dropped_when_the_outer_run_fails(self, key):
        inside, after_name, after_value = nested_then_again(key, fail=True)
        assert isinstance(inside, ValueError)
        assert after_name == "Completed"
        assert after_value == 6
        assert recorded(key) == [1, 2, 3]
