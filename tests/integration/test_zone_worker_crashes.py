"""Nothing lost when a zone worker or the broker dies: real `patchgate worker` processes
SIGKILLed at each step of a host's apply, and a Redis or RabbitMQ broker (a private
server or node of the test's own) restarted mid-rollout; each
host is applied exactly once (the simulated hosts' op history) and the rollout finishes.

Kill points: ``before_apply`` (the call taken, nothing done on the host),
``during_apply`` (the host patched, the worker still waiting on it), ``after_apply``
(the executor answered, the result not yet sent). A second worker of the zone is then
started; the leader re-sends the lost call with the same op id and the worker answers
it from the host's op status instead of applying again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from integrations.zones.celeryapp import TASK, make_app, queue_name
from integrations.zones.monitor import WorkerView, look
from integrations.zones.wire import encode_host
from tests.dbutil import fresh_database_url
from tests.enginekit import make_executor, make_hosts
from tests.zonekit import (
    Fleet,
    PrivateRabbit,
    PrivateRedis,
    fleet,
    rabbit_broker,
    redis_broker,
    zoned_rig,
)
from workflows.db import Database

ALL = [h.name for h in make_hosts()]
ZONED = [n for n in ALL if n != "dev-01"]
ZONES: dict[str, str | None] = {n: "dmz" for n in ZONED}


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # The broker and worker paths are what these tests exercise: SQLite alone (the
    # happy path runs on both backends in test_zone_workers.py).
    with fresh_database_url("sqlite", tmp_path_factory.mktemp("db")) as url:
        yield url


@contextmanager
def _broker(kind: str) -> Iterator[str]:
    if kind == "redis":
        with redis_broker(13) as url:
            yield url
    else:
        with rabbit_broker("crash") as url:
            yield url


KILL_AT = {
    "before_apply": {"PATCHGATE_TEST_WORKER_PAUSE": "before_apply:120"},
    "during_apply": {"PATCHGATE_RECORDING_APPLY_DELAY": "120"},
    "after_apply": {"PATCHGATE_TEST_WORKER_PAUSE": "after_apply:120"},
}


def _wait_for_kill_point(workers: Fleet, point: str) -> str:
    """The host the doomed worker is at, once it reached ``point``."""
    if point != "during_apply":
        return workers.wait_for_step(f"worker.{point}").split()[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        applied = [n for n, ops in workers.applied_ops().items() if ops and n in ZONED]
        if applied:
            return applied[0]
        time.sleep(0.05)
    raise AssertionError("no zoned host was applied")


def _applied_once(workers: Fleet) -> dict[str, int]:
    ops = workers.applied_ops()
    return {n: len(ops.get(n, [])) for n in ALL}


# The default run kills at each point once, across both brokers; -m slow adds the rest.
SLOW = pytest.mark.slow
MATRIX = [
    ("redis", "before_apply"),
    ("rabbitmq", "during_apply"),
    ("redis", "after_apply"),
    pytest.param("rabbitmq", "before_apply", marks=SLOW),
    pytest.param("redis", "during_apply", marks=SLOW),
    pytest.param("rabbitmq", "after_apply", marks=SLOW),
]


@pytest.mark.parametrize(("kind", "point"), MATRIX)
async def test_a_worker_killed_at_each_step_of_an_apply_leaves_each_host_applied_once(
    db: Database, tmp_path: Path, kind: str, point: str
) -> None:
    with _broker(kind) as broker, fleet(broker, tmp_path) as workers:
        doomed = workers.start("dmz", slots=1, **KILL_AT[point])
        rig = zoned_rig(db, workers, ZONES)
        try:
            rollout_id = await rig.start()
            run = asyncio.create_task(rig.approve_all(rig.engine(), rollout_id))
            host = await asyncio.to_thread(_wait_for_kill_point, workers, point)
            doomed.kill()
            before = workers.applied_ops().get(host, [])
            assert len(before) == (0 if point == "before_apply" else 1)
            workers.start("dmz")
            await asyncio.wait_for(run, 240)
            assert await rig.outcome(rollout_id) == "succeeded"
            assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
            resent = rig.executor.client.resent["dmz"]  # type: ignore[attr-defined]
        finally:
            rig.executor.close_zones()  # type: ignore[attr-defined]
        assert _applied_once(workers) == dict.fromkeys(ALL, 1)
        # The killed host's op is the one recorded before the kill (not a second op).
        if before:
            assert workers.applied_ops()[host] == before
        # Redis keeps an unacked message until its visibility timeout: the leader's
        # re-send is what saved the host. RabbitMQ re-queues it when the worker's
        # connection drops, and the new worker may answer that one first.
        assert resent >= 1 or kind == "rabbitmq"


async def test_a_redis_broker_restarted_mid_rollout_loses_no_host_and_applies_none_twice(
    db: Database, tmp_path: Path
) -> None:
    redis = PrivateRedis(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    redis.start()
    try:
        with fleet(redis.url, tmp_path) as workers:
            workers.start("dmz", slots=2, PATCHGATE_RECORDING_APPLY_DELAY="1.5")
            rig = zoned_rig(db, workers, ZONES)
            try:
                rollout_id = await rig.start()
                run = asyncio.create_task(rig.approve_all(rig.engine(), rollout_id))
                await asyncio.to_thread(_wait_for_kill_point, workers, "during_apply")
                await asyncio.to_thread(redis.restart, 2.0)
                await asyncio.wait_for(run, 240)
                assert await rig.outcome(rollout_id) == "succeeded"
            finally:
                rig.executor.close_zones()  # type: ignore[attr-defined]
            assert _applied_once(workers) == dict.fromkeys(ALL, 1)
    finally:
        redis.stop()


async def test_a_rabbitmq_broker_restarted_mid_rollout_loses_no_host_and_applies_none_twice(
    db: Database, tmp_path: Path
) -> None:
    # A second RabbitMQ node (own name, ports, mnesia, cookie): the machine's is shared.
    rabbit = PrivateRabbit(tmp_path / "rabbit")
    rabbit.start()
    try:
        with fleet(rabbit.url, tmp_path) as workers:
            workers.start("dmz", slots=2, PATCHGATE_RECORDING_APPLY_DELAY="1.5")
            rig = zoned_rig(db, workers, ZONES)
            try:
                rollout_id = await rig.start()
                run = asyncio.create_task(rig.approve_all(rig.engine(), rollout_id))
                await asyncio.to_thread(_wait_for_kill_point, workers, "during_apply")
                await asyncio.to_thread(rabbit.restart, 2.0)
                await asyncio.wait_for(run, 300)
                assert await rig.outcome(rollout_id) == "succeeded"
            finally:
                rig.executor.close_zones()  # type: ignore[attr-defined]
            # The restart reached the worker mid-apply, and it came back on its own.
            assert "Connection to broker lost" in workers.workers[0].output()
            assert len(workers.workers) == 1 and workers.workers[0].proc.poll() is None
            assert _applied_once(workers) == dict.fromkeys(ALL, 1)
    finally:
        rabbit.stop()


def test_a_worker_deaf_to_the_broker_starts_afresh_and_answers_again(tmp_path: Path) -> None:
    # The worker's consumer thread is held in its first status reply: connected, but
    # answering nothing, as Celery's consumer was after a RabbitMQ restart. Its own
    # look through the broker finds it deaf and it starts afresh, same process.
    with redis_broker(13) as broker, fleet(broker, tmp_path) as workers:
        worker = workers.start(
            "dmz",
            slots=1,
            PATCHGATE_TEST_WORKER_PAUSE="status:600",
            PATCHGATE_WORKER_SELF_CHECK="1",
        )
        workers.wait_for_step("worker.status")
        app = make_app(broker)
        name = f"dmz.{worker.proc.pid}@"
        deadline = time.monotonic() + 60
        seen: dict[str, WorkerView] = {}
        while time.monotonic() < deadline and not any(n.startswith(name) for n in seen):
            time.sleep(0.5)
            seen, _ = look(app, set(), reply_timeout=1.0)
        assert any(n.startswith(name) for n in seen), worker.output()[-3000:]
        assert worker.proc.poll() is None
        out = worker.output()
        assert "did not answer through the broker for 3 looks" in out
        assert out.count("starting again") == 1


def test_a_worker_told_to_stop_during_a_long_call_stops_and_is_not_restarted(
    tmp_path: Path,
) -> None:
    # Its consumer stops answering while the warm shutdown waits for the call; the
    # worker's own look must not take that for deafness and start it afresh.
    with redis_broker(13) as broker, fleet(broker, tmp_path) as workers:
        executor = make_executor(make_hosts())
        executor.state_file = workers.state_file
        executor.save()
        worker = workers.start(
            "dmz",
            slots=1,
            PATCHGATE_TEST_WORKER_PAUSE="before_apply:20",
            PATCHGATE_WORKER_SELF_CHECK="1",
        )
        worker.wait_ready()
        host = make_hosts()[2]
        body = {
            "op": "apply",
            "host": encode_host(host),
            "args": {"patchset": {"openssl": "3.0.13-1"}, "op_id": "pg-test-stop"},
        }
        make_app(broker).send_task(TASK, args=[body], queue=queue_name("dmz"))
        workers.wait_for_step("worker.before_apply")
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(60) == 0
        out = worker.output()
        assert "Warm shutdown" in out
        assert "starting again" not in out
