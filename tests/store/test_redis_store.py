"""Redis-only behaviour of the run store: key layout, retention, unreachable server."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
import redis

from engine.exceptions import CelerityException, StoreUnavailable
from engine.schemas import FlowRun, RunLog, TaskRun
from engine.states import Completed, Pending, Running, Scheduled
from engine.store import keys
from engine.store.redis import RedisRunStore, masked_url

RETENTION = 3600


@pytest.fixture
def client(store_redis_url: str) -> Iterator[redis.Redis]:
    raw = redis.Redis.from_url(store_redis_url)
    yield raw
    raw.close()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def store(store_redis_url: str, key_prefix: str) -> Iterator[RedisRunStore]:
    opened = RedisRunStore(store_redis_url, prefix=key_prefix, retention_seconds=RETENTION)
    yield opened
    opened.close()


def finished_flow_run(store: RedisRunStore) -> tuple[FlowRun, TaskRun]:
    """A flow run with a completed task run, logs and an input, itself still running."""
    flow_run = store.create_flow_run(FlowRun(name="f", state=Pending()))
    task_run = store.create_task_run(TaskRun(name="t", flow_run_id=flow_run.id, state=Pending()))
    store.propose_state(flow_run.id, Running())
    store.write_logs([RunLog(name="l", level=20, message="m", flow_run_id=flow_run.id)])
    store.set_run_input(flow_run.id, "approval", "true")
    return flow_run, task_run


def flow_run_keys(prefix: str, flow_run: FlowRun, task_run: TaskRun) -> list[str]:
    return [
        keys.run(prefix, flow_run.id),
        keys.history(prefix, flow_run.id),
        keys.flow_task_runs(prefix, flow_run.id),
        keys.logs(prefix, flow_run.id),
        keys.run_input(prefix, flow_run.id, "approval"),
        keys.run_input_keys(prefix, flow_run.id),
        keys.run(prefix, task_run.id),
        keys.history(prefix, task_run.id),
    ]


class TestKeyLayout:
    def test_every_key_starts_with_the_prefix(
        self, store: RedisRunStore, client: redis.Redis, key_prefix: str
    ) -> None:
        flow_run, _ = finished_flow_run(store)
        store.propose_state(flow_run.id, Completed())

        written = [k.decode() for k in client.scan_iter(match=f"{key_prefix}:*")]

        assert len(written) >= 8
        assert all(k.startswith(f"{key_prefix}:") for k in written)

    def test_key_builders_use_the_prefix(self) -> None:
        run_id = uuid.uuid4()
        built = [
            keys.run("p", run_id),
            keys.history("p", run_id),
            keys.flow_task_runs("p", run_id),
            keys.flow_runs_index("p"),
            keys.logs("p", run_id),
            keys.run_input("p", run_id, "k"),
            keys.events("p", run_id),
        ]
        assert all(k.startswith("p:") for k in built)
        assert len(set(built)) == len(built)


class TestRetention:
    def test_unfinished_runs_do_not_expire(
        self, store: RedisRunStore, client: redis.Redis, key_prefix: str
    ) -> None:
        flow_run, task_run = finished_flow_run(store)

        ttls = [client.ttl(k) for k in flow_run_keys(key_prefix, flow_run, task_run)]

        assert ttls == [-1] * len(ttls)

    def test_a_final_task_run_expires(
        self, store: RedisRunStore, client: redis.Redis, key_prefix: str
    ) -> None:
        _, task_run = finished_flow_run(store)
        store.propose_state(task_run.id, Running())
        store.propose_state(task_run.id, Completed())

        assert 0 < client.ttl(keys.run(key_prefix, task_run.id)) <= RETENTION
        assert 0 < client.ttl(keys.history(key_prefix, task_run.id)) <= RETENTION

    def test_a_final_flow_run_expires_with_everything_it_owns(
        self, store: RedisRunStore, client: redis.Redis, key_prefix: str
    ) -> None:
        flow_run, task_run = finished_flow_run(store)

        store.propose_state(flow_run.id, Completed())

        for key in flow_run_keys(key_prefix, flow_run, task_run):
            assert 0 < client.ttl(key) <= RETENTION, key

    def test_a_forced_retry_keeps_the_run_again(
        self, store: RedisRunStore, client: redis.Redis, key_prefix: str
    ) -> None:
        flow_run, task_run = finished_flow_run(store)
        store.propose_state(flow_run.id, Completed())

        store.propose_state(flow_run.id, Scheduled(), force=True)

        ttls = [client.ttl(k) for k in flow_run_keys(key_prefix, flow_run, task_run)]
        assert ttls == [-1] * len(ttls)

    def test_expired_flow_runs_drop_out_of_the_list(
        self, store: RedisRunStore, client: redis.Redis, key_prefix: str
    ) -> None:
        kept, gone = (store.create_flow_run(FlowRun(name=n)) for n in ("kept", "gone"))
        client.delete(keys.run(key_prefix, gone.id))  # as if its retention lapsed

        assert [r.id for r in store.list_flow_runs()] == [kept.id]
        assert client.zcard(keys.flow_runs_index(key_prefix)) == 1


class TestConnection:
    def test_an_unreachable_server_is_a_clear_error(self, unused_port: int) -> None:
        url = f"redis://:s3cret@127.0.0.1:{unused_port}/0"
        store = RedisRunStore(url, socket_timeout=1)

        with pytest.raises(StoreUnavailable) as caught:
            store.read_flow_run(uuid.uuid4())
        store.close()

        message = str(caught.value)
        assert isinstance(caught.value, CelerityException)
        assert "s3cret" not in message and f"127.0.0.1:{unused_port}" in message
        assert "is redis running?" in message.lower()
        assert isinstance(caught.value.__cause__, redis.ConnectionError)

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
            ("redis://user:pw@h:1/0", "redis://user:***@h:1/0"),
            ("redis://h:1/0", "redis://h:1/0"),
            ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
        ],
    )
    def test_passwords_are_masked(self, url: str, shown: str) -> None:
        assert masked_url(url) == shown

    def test_a_client_passed_in_is_used_and_left_open(
        self, client: redis.Redis, store_redis_url: str, key_prefix: str
    ) -> None:
        store = RedisRunStore(store_redis_url, prefix=key_prefix, client=client)
        flow_run = store.create_flow_run(FlowRun(name="f"))
        store.close()

        assert client.exists(keys.run(key_prefix, flow_run.id)) == 1
