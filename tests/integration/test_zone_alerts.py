"""A zone with waiting hosts and no live worker alerts on-call in Slack, once per outage,
and notes the recovery: real `patchgate worker` processes on Redis, the engine as the
leader, the outbox delivering to the Slack Web API emulator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import sqlalchemy as sa

from bot.zone_alerts import ZoneAlerts
from integrations.slack import SlackDeliverer, make_client
from tests.fakes.slack_api import slack_emulator
from tests.integration.test_zone_workers import ZONES
from tests.zonekit import Fleet, fleet, redis_broker, zoned_rig
from workflows.db import Database, read_only
from workflows.models import OutboxItem
from workflows.outbox import OutboxWorker
from workflows.ports import InventoryHost

TOKEN = "xoxb-zone-alerts"


async def _zone_keys(db: Database) -> list[str]:
    async with read_only(db) as session:
        rows = await session.scalars(
            sa.select(OutboxItem.key).where(OutboxItem.key.like("zone:%")).order_by(OutboxItem.id)
        )
    return list(rows)


async def _until(db: Database, count: int, suffix: str) -> list[str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        keys = await _zone_keys(db)
        if sum(k.endswith(suffix) for k in keys) >= count:
            return keys
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {count} zone rows ending {suffix!r}: {await _zone_keys(db)}")


async def test_a_zone_without_a_worker_alerts_oncall_once_per_outage_and_notes_each_recovery(
    db: Database, tmp_path: Path
) -> None:
    with redis_broker(11) as url, fleet(url, tmp_path) as workers:
        async with slack_emulator(token=TOKEN) as slack:
            await _two_outages(db, workers, slack)


async def _two_outages(db: Database, workers: Fleet, slack: object) -> None:
    # lab's worker is up before the leader looks (a worker slower than alert_after
    # would alert too: that is the point of PATCHGATE_ZONE_ALERT_AFTER).
    workers.start("lab").wait_ready()
    alerts = ZoneAlerts(db, lambda: rig.clock.now(), alert_after=1.0)
    rig = zoned_rig(db, workers, ZONES, alerts=alerts)
    router = rig.executor
    try:
        # Outage 1: dmz has no worker from the start; several of its hosts wait at once.
        rollout_id = await rig.start()
        run = asyncio.create_task(rig.approve_all(rig.engine(), rollout_id))
        keys = await _until(db, 1, ":down")
        await asyncio.sleep(4)  # more heartbeats and waiting hosts: still one alert
        keys = await _zone_keys(db)
        assert [k.rsplit(":", 1)[1] for k in keys] == ["down"], keys
        assert keys[0].startswith("zone:dmz:")
        assert not run.done()
        workers.start("dmz")
        await asyncio.wait_for(run, 180)
        assert (await rig.rollout(rollout_id)).state == "succeeded"
        keys = await _until(db, 1, ":back")

        # Outage 2: the zone's only worker dies while a host step needs it.
        dmz = next(w for w in workers.workers if w.zone == "dmz")
        dmz.kill()
        host = InventoryHost(name="dev-02", vars={"patchgate_zone": "dmz"})
        facts = asyncio.create_task(router.facts(host))  # type: ignore[attr-defined]
        await _until(db, 2, ":down")
        workers.start("dmz")
        assert (await asyncio.wait_for(facts, 120)).os_id == "debian"
        keys = await _until(db, 2, ":back")
        await alerts.drain()
    finally:
        router.close_zones()  # type: ignore[attr-defined]
    keys = await _zone_keys(db)
    assert [k.rsplit(":", 1)[1] for k in keys] == ["down", "back", "down", "back"], keys
    assert keys[0].rsplit(":", 1)[0] == keys[1].rsplit(":", 1)[0]  # one outage id each
    assert keys[0].rsplit(":", 1)[0] != keys[2].rsplit(":", 1)[0]

    # The outbox delivers them to the on-call channel, as it does rollback alerts.
    client = make_client(token=TOKEN, base_url=slack.url, timeout=10)  # type: ignore[attr-defined]
    outbox = OutboxWorker(
        db,
        {"notify": SlackDeliverer(client, oncall_channel="C0ONCALL", oncall_group="S0ONCALL")},
        clock=rig.clock.now,
        owner="test",
    )
    for _ in range(50):
        if await outbox.run_once() == 0:
            break
    oncall = [m["text"] for m in slack.messages.get("C0ONCALL", [])]  # type: ignore[attr-defined]
    downs = [t for t in oncall if "Zone dmz has no live worker" in t]
    backs = [t for t in oncall if "Zone dmz has a live worker again" in t]
    assert len(downs) == 2 and len(backs) == 2, oncall
    assert all(t.startswith("<!subteam^S0ONCALL> :rotating_light:") for t in downs)
    assert all("subteam" not in t for t in backs)
    assert "`patchgate worker --zone dmz`" in downs[0]
    assert not [t for t in oncall if "lab" in t]  # the zone with a worker never alerted
