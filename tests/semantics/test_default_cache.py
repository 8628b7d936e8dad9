"""Issue 8 behaviour 4: a task without cache options caches by DEFAULT (inputs, source
and flow run) only where results persist.

A repeated identical call in a flow with ``persist_result=True`` is Cached;
without persistence every call runs.
"""

from engine import flow, task

from ._side_effects import record, recorded


@task
def plain(key, x):
    record(key, x)
    return x * 10


@task(persist_result=False)
def never_cached(key, x):
    record(key, x)
    return x


@flow
def not_persisted(key):
    return [plain(key, 1, return_state=True).name for _ in range(2)]


@flow(persist_result=True)
def persisted(key):
    first = plain(key, 1, return_state=True)
    again = plain(key, 1, return_state=True)
    other = plain(key, 2, return_state=True)
    submitted = plain.submit(key, 1)
    submitted.wait()
    submitted = submitted.state
    return [first.name, again.name, other.name, submitted.name], again.result()


@flow(persist_result=True)
def persisted_but_task_opts_out(key):
    return [never_cached(key, 1, return_state=True).name for _ in range(2)]


class TestDefaultCachePolicy:
    def test_without_persistence_every_call_runs(self, key):
        assert not_persisted(key) == ["Completed", "Completed"]
        assert recorded(key) == [1, 1]

    def test_with_persistence_an_identical_call_is_cached(self, key):
        names, value = persisted(key)
        assert names == ["Completed", "Cached", "Completed", "Cached"]
        assert value == 10
        assert recorded(key) == [1, 2]

    def test_the_cache_is_per_flow_run(self, key):
        persisted(key)
        persisted(key)
        assert recorded(key) == [1, 2, 1, 2]

    def test_a_task_that_does_not_persist_never_caches(self, key):
        assert persisted_but_task_opts_out(key) == ["Completed", "Completed"]
        assert recorded(key) == [1, 1]
