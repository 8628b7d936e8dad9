"""ProcessPoolTaskRunner used directly, its options, and what crosses between processes.

Jobs and answers are cloudpickled; each is signed by the process that writes
it and verified before the other unpickles it.
"""

from __future__ import annotations

import multiprocessing

import cloudpickle
import pytest

from engine import get_run_logger, task
from engine.config import current_settings, overridden_settings
from engine.context import TagsContext, tags
from engine.exceptions import SignatureVerificationError
from engine.futures import PrefectConcurrentFuture
from engine.process_pool import pack_job, run_job, unpack_answer
from engine.schemas import TaskRun
from engine.signing import Signer
from engine.store import get_store
from engine.task_runners import ProcessPoolTaskRunner


@task
def add(x: int, y: int = 0) -> int:
    return x + y


@task
async def async_add(x: int, y: int = 0) -> int:
    return x + y


@task
def current_tags() -> set:
    return TagsContext.get().current_tags


@task
def explode() -> None:
    raise RuntimeError("raised in a pool process")


@task
def chatty() -> str:
    logger = get_run_logger()
    logger.info("public line")
    logger.info("secret line")
    return "done"


def prefix_and_drop_secrets():
    """A message processor factory: drops lines saying 'secret', prefixes the rest."""

    def processor(kind, payload):
        if "secret" in payload["message"]:
            return None
        return kind, {**payload, "message": f"[pool] {payload['message']}"}

    return processor


def set_marker(value: str) -> None:
    import os

    os.environ["POOL_TEST_MARKER"] = value


class TestUsedDirectly:
    def test_submit_and_map(self):
        with ProcessPoolTaskRunner(max_workers=2) as runner:
            future = runner.submit(add, {"x": 1, "y": 2})
            assert isinstance(future, PrefectConcurrentFuture)
            assert future.result() == 3
            assert runner.map(async_add, {"x": [1, 2, 3], "y": [4, 5, 6]}).result() == [5, 7, 9]

    def test_the_submitters_tags_reach_the_process(self):
        with tags("t1", "t2"), ProcessPoolTaskRunner(max_workers=1) as runner:
            assert runner.submit(current_tags, {}).result() == {"t1", "t2"}

    def test_an_exception_keeps_its_type_and_message(self):
        with ProcessPoolTaskRunner(max_workers=1) as runner:
            future = runner.submit(explode, {})
            with pytest.raises(RuntimeError, match="raised in a pool process"):
                future.result()
            assert get_store().read_task_run(future.task_run_id).state.is_failed()

    def test_large_parameters(self):
        numbers = list(range(10_000))
        with ProcessPoolTaskRunner(max_workers=1) as runner:
            assert runner.submit(add, {"x": sum(numbers), "y": len(numbers)}).result() == (
                sum(numbers) + 10_000
            )

    def test_log_lines_pass_through_the_message_processors(self):
        runner = ProcessPoolTaskRunner(
            max_workers=1, subprocess_message_processor_factories=[prefix_and_drop_secrets]
        )
        with runner:
            future = runner.submit(chatty, {})
            assert future.result() == "done"
        messages = [
            log.message
            for log in get_store().read_logs(None)
            if log.task_run_id == future.task_run_id
        ]
        assert "[pool] public line" in messages
        assert not any("secret" in m for m in messages)

    def test_exit_and_cancel_all_stop_the_pool(self):
        runner = ProcessPoolTaskRunner(max_workers=1)
        with runner:
            futures = [runner.submit(add, {"x": i}) for i in range(3)]
            runner.cancel_all()
            assert runner._executor is None
            # Every run ends, whether it ran or was cancelled while queued
            for future in futures:
                future.wait(timeout=30)
                assert future.state.name in {"Completed", "Cancelled"}
        assert runner._executor is None


class TestOptions:
    def test_duplicate_keeps_every_option(self):
        runner = ProcessPoolTaskRunner(
            max_workers=3,
            subprocess_message_processor_factories=[prefix_and_drop_secrets],
            initializer=set_marker,
            initargs=("x",),
        )
        twin = runner.duplicate()
        assert twin is not runner and twin == runner
        assert twin.subprocess_message_processor_factories == (prefix_and_drop_secrets,)
        assert (twin._initializer, twin._initargs) == (set_marker, ("x",))
        assert twin != ProcessPoolTaskRunner(max_workers=2)

    def test_processors_cannot_change_while_started(self):
        runner = ProcessPoolTaskRunner(max_workers=1)
        runner.set_subprocess_message_processor_factories([prefix_and_drop_secrets])
        assert runner.subprocess_message_processor_factories == (prefix_and_drop_secrets,)
        with runner, pytest.raises(RuntimeError, match="while task runner is started"):
            runner.subprocess_message_processor_factories = []

    def test_max_workers_defaults(self):
        assert ProcessPoolTaskRunner().max_workers == multiprocessing.cpu_count()
        settings = current_settings().model_copy(update={"process_pool_max_workers": 3})
        with overridden_settings(settings):
            assert ProcessPoolTaskRunner().max_workers == 3
        assert ProcessPoolTaskRunner().name == "processpool"

    def test_initializer_runs_in_each_worker(self):
        import os

        @task
        def marker() -> str | None:
            return os.environ.get("POOL_TEST_MARKER")

        with ProcessPoolTaskRunner(max_workers=1, initializer=set_marker, initargs=("set",)) as r:
            assert r.submit(marker, {}).result() == "set"
        assert "POOL_TEST_MARKER" not in os.environ


class _Tripwire:
    """Unpickling it would record that untrusted bytes were unpickled."""

    unpickled = False

    def __reduce__(self):
        return (_Tripwire._trip, ())

    @staticmethod
    def _trip():
        _Tripwire.unpickled = True
        return None


class TestSigning:
    def run(self) -> TaskRun:
        return TaskRun(name="signed", task_key="k", dynamic_key="0")

    def test_a_job_from_another_key_is_not_unpickled(self):
        forged = Signer("another-key-0123456789").sign(cloudpickle.dumps(_Tripwire()))
        with pytest.raises(SignatureVerificationError):
            run_job(forged)
        unsigned = cloudpickle.dumps(_Tripwire())
        with pytest.raises(SignatureVerificationError):
            run_job(unsigned)
        assert not _Tripwire.unpickled

    def test_a_tampered_answer_is_refused(self):
        job = pack_job(add, self.run(), {"x": 1}, {"store_url": "memory://"})
        digest, _, body = job.partition(b".")
        tampered = digest + b"." + body.replace(b"signed", b"signex")
        with pytest.raises(SignatureVerificationError):
            unpack_answer(tampered, get_store())
