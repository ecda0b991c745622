"""Zone workers end to end: a rollout whose hosts sit in zones, worked on by real
`patchgate worker` processes over Redis and RabbitMQ, with the engine as the leader."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.metrics import Metrics
from bot.zone_metrics import zone_views
from tests.enginekit import make_hosts
from tests.zonekit import ROOT, Fleet, fleet, rabbit_broker, redis_broker, zoned_rig
from workflows.db import Database
from workflows.errors import HostUnreachable
from workflows.ports import InventoryHost

ALL = [h.name for h in make_hosts()]
# dev-01 stays with the leader; the rest sit in two zones.
ZONES: dict[str, str | None] = {
    "dev-01": None,
    "dev-02": "dmz",
    "stg-01": "dmz",
    "stg-02": "lab",
    **{f"prod-{i:02d}": ("dmz" if i % 2 else "lab") for i in range(1, 7)},
}


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "redis":
        with redis_broker(12) as url:
            yield url
    else:
        with rabbit_broker("zones") as url:
            yield url


@pytest.fixture
def workers(broker: str, tmp_path: Path) -> Iterator[Fleet]:
    with fleet(broker, tmp_path) as f:
        yield f


async def test_a_rollout_over_two_zones_applies_each_host_exactly_once_on_its_zones_worker(
    db: Database, workers: Fleet
) -> None:
    dmz, lab = workers.start("dmz"), workers.start("lab")
    rig = zoned_rig(db, workers, ZONES)
    try:
        rollout_id = await rig.start()
        await asyncio.wait_for(rig.approve_all(rig.engine(), rollout_id), 180)
        assert (await rig.rollout(rollout_id)).state == "succeeded"
        assert set((await rig.host_states(rollout_id)).values()) == {"healthy"}
    finally:
        rig.executor.close_zones()  # type: ignore[attr-defined]
    assert {n: len(ops) for n, ops in workers.applied_ops().items() if n in ALL} == dict.fromkeys(
        ALL, 1
    )
    # Each zoned host was applied by its own zone's worker; dev-01 by the leader.
    dmz_log, lab_log = dmz.output(), lab.output()
    for name, zone in ZONES.items():
        line = f"apply on {name} "
        assert (line in dmz_log) == (zone == "dmz"), name
        assert (line in lab_log) == (zone == "lab"), name


async def test_a_zone_without_a_worker_makes_its_hosts_wait_and_shows_down_then_proceeds(
    db: Database, tmp_path: Path
) -> None:
    # Broker-independent logic (the monitor's view): Redis alone, as one test on both.
    with redis_broker(12) as url, fleet(url, tmp_path) as workers:
        await _zone_without_a_worker(db, workers)


async def _zone_without_a_worker(db: Database, workers: Fleet) -> None:
    workers.start("lab")
    rig = zoned_rig(db, workers, ZONES)
    router = rig.executor
    try:
        rollout_id = await rig.start()
        engine = rig.engine()
        run = asyncio.create_task(rig.approve_all(engine, rollout_id))
        metrics = Metrics(zones=lambda: zone_views(router))
        for _ in range(200):
            await asyncio.sleep(0.1)
            text = metrics.exposition().decode()
            if 'patchgate_zone_down{zone="dmz"} 1.0' in text:
                break
        else:
            raise AssertionError("the dmz zone was never shown down:\n" + text)
        assert 'patchgate_zone_workers{zone="dmz"} 0.0' in text
        waiting = re.search(r'patchgate_zone_waiting_hosts\{zone="dmz"\} ([0-9.]+)', text)
        assert waiting is not None and float(waiting.group(1)) >= 1
        states = await rig.host_states(rollout_id)
        assert states["dev-02"] not in ("failed", "healthy"), states
        assert not run.done()
        workers.start("dmz")  # a worker comes: the waiting host goes on
        await asyncio.wait_for(run, 180)
        assert (await rig.rollout(rollout_id)).state == "succeeded"
        text = metrics.exposition().decode()
        assert 'patchgate_zone_workers{zone="dmz"} 1.0' in text
        assert 'patchgate_zone_down{zone="dmz"} 0.0' in text
    finally:
        router.close_zones()  # type: ignore[attr-defined]
    assert {n: len(o) for n, o in workers.applied_ops().items() if n in ALL} == dict.fromkeys(
        ALL, 1
    )


async def test_a_zone_that_gets_no_worker_in_time_fails_the_step_as_unreachable(
    db: Database, tmp_path: Path
) -> None:
    with redis_broker(12) as url, fleet(url, tmp_path) as workers:
        await _no_worker_in_time(db, workers)


async def _no_worker_in_time(db: Database, workers: Fleet) -> None:
    rig = zoned_rig(db, workers, ZONES, wait_for_worker=2.0)
    try:
        with pytest.raises(HostUnreachable, match="zone dmz had no live worker for 2s"):
            await rig.executor.facts(InventoryHost(name="x", vars={"patchgate_zone": "dmz"}))
    finally:
        rig.executor.close_zones()  # type: ignore[attr-defined]


def test_without_zoned_hosts_the_leader_imports_no_celery_and_needs_no_broker(
    tmp_path: Path,
) -> None:
    script = """
import asyncio, sys
from bot.app import build_executor, build_zone_router
from bot.settings import load_settings
settings = load_settings(executor="recording", broker_url="redis://127.0.0.1:1/0")
executor, health = build_zone_router(settings, *build_executor(settings))
from workflows.ports import InventoryHost
facts = asyncio.run(executor.facts(InventoryHost(name="web-1")))
print(facts.os_id, "celery" in sys.modules, "kombu" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["debian", "False", "False"]


async def test_a_zoned_host_without_a_broker_fails_with_a_clear_message() -> None:
    from bot.app import build_executor, build_zone_router
    from bot.settings import load_settings

    settings = load_settings(executor="recording")
    executor, _ = build_zone_router(settings, *build_executor(settings))
    with pytest.raises(Exception, match="zone dmz but PATCHGATE_BROKER_URL is not set"):
        await executor.facts(InventoryHost(name="x", vars={"patchgate_zone": "dmz"}))


def test_a_worker_refuses_to_start_with_database_credentials(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PATCHGATE_BROKER_URL="redis://127.0.0.1:6379/12",
        PATCHGATE_DATABASE_URL="postgresql://patchgate:secret@db/patchgate",
    )
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "worker", "--zone", "dmz"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "PATCHGATE_DATABASE_URL: a zone worker holds no database credentials" in out.stderr
    assert "secret" not in out.stderr + out.stdout


def test_a_worker_refuses_a_bad_zone_name_and_a_missing_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHGATE_")}
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "worker", "--zone", "dmz;rm"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--zone: bad zone name 'dmz;rm'" in out.stderr
    assert "PATCHGATE_BROKER_URL: required for this command" in out.stderr
