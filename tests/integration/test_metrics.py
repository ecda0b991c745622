"""GET /metrics on the real aiohttp server, scraped over HTTP and read with
prometheus-client's own text-format parser, against a database built by real rollouts."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest_asyncio
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import TTP_BUCKETS, Metrics, package_compare
from bot.metrics_snapshot import MetricsSnapshot
from bot.server import SNAPSHOT, ServerDeps, build_web_app, start_server
from tests.enginekit import Rig
from workflows.db import Database, read_only, unit_of_work
from workflows.models import FixDetection, HostRun, LeaderState, OutboxItem

DAY = 86400.0


@dataclass
class Leadership:
    is_leader: bool = True
    epoch: int | None = 7
    refusal: str | None = None


@dataclass
class Scraper:
    url: str
    http: aiohttp.ClientSession
    leadership: Leadership
    snapshot: MetricsSnapshot
    ticks: list[float | None] = field(default_factory=lambda: [None])

    async def scrape(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """sample name -> {sorted labels: value}, after a refresh of the snapshot (what
        the server's background task does every interval, run now)."""
        await self.snapshot.refresh()
        async with self.http.get(self.url) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            text = await response.text()
        samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[labels] = sample.value
        return samples


@pytest_asyncio.fixture
async def scraper(db: Database) -> AsyncIterator[Scraper]:
    leadership = Leadership()
    ticks: list[float | None] = [None]
    metrics = Metrics(last_tick=lambda: ticks[-1], compare=package_compare)
    deps = ServerDeps(db=db, leadership=leadership, metrics=metrics, metrics_interval=3600)
    app = build_web_app(deps)
    runner = await start_server(app, host="127.0.0.1", port=0)
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        yield Scraper(f"http://127.0.0.1:{port}/metrics", http, leadership, app[SNAPSHOT], ticks)
    await runner.cleanup()


def one(samples: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    return samples[tuple(sorted(labels.items()))]


async def detect(db: Database, rig: Rig, **fix: object) -> None:
    now = rig.clock.now()
    row = {
        "package": "openssl",
        "candidate": "3.0.13-1",
        "severity": "high",
        "first_detected_at": now - dt.timedelta(days=1),
        "last_detected_at": now,
        **fix,
    }
    async with unit_of_work(db) as session:
        session.add(FixDetection(**row))


async def by_state(db: Database, column: Any) -> dict[str, int]:
    async with read_only(db) as session:
        rows = await session.execute(sa.select(column, sa.func.count()).group_by(column))
    return {str(state): int(n) for state, n in rows}


async def test_metrics_after_real_rollouts_match_the_database(
    db: Database, scraper: Scraper
) -> None:
    rig = Rig(db)
    now = rig.clock.now()
    # Fixes the assessment found: published 3 days ago on the dev hosts (critical), first
    # seen a day ago without a publication date on staging; stg-02's fix is an older
    # version than the one installed (patched only by the version comparison); prod-01
    # fails to patch; demo-app 9.9 is never installed.
    await detect(db, rig, host="dev-01", severity="critical", published=now - dt.timedelta(3))
    await detect(db, rig, host="dev-02", severity="critical", published=now - dt.timedelta(3))
    await detect(db, rig, host="stg-01")
    await detect(db, rig, host="stg-02", candidate="3.0.12-1")
    await detect(db, rig, host="prod-01", severity="medium")
    await detect(db, rig, host="prod-02", package="demo-app", candidate="9.9", severity="low")
    rig.executor.fail("prod-01", "apply")

    engine = rig.engine()
    first = await rig.start()
    await rig.approve_all(engine, first)
    second = await rig.start()  # dev runs again, then waits at the staging gate
    await engine.run_until_idle()
    scraper.ticks.append(engine.last_tick_at)
    async with unit_of_work(db) as session:
        session.add(LeaderState(name="leader", epoch=7, heartbeat_at=now))
        dead = await session.scalar(sa.select(OutboxItem).order_by(OutboxItem.id).limit(1))
        assert dead is not None
        dead.state = "dead"

    samples = await scraper.scrape()

    rollouts = {dict(k)["state"]: v for k, v in samples["patchgate_rollouts"].items()}
    # prod-01 failed within the budget
    assert rollouts["succeeded_with_failures"] == 1 and rollouts["awaiting_approval"] == 1
    assert sum(rollouts.values()) == 2 and (await rig.rollout(second)).state == "awaiting_approval"
    runs = {dict(k)["state"]: int(v) for k, v in samples["patchgate_host_runs"].items()}
    assert runs == {**dict.fromkeys(runs, 0), **await by_state(db, HostRun.state)}
    # the second rollout finds dev patched by the first: up to date, no package command
    assert runs["healthy"] == 9 and runs["up_to_date"] == 2 and runs["pending"] == 8
    assert sum(runs.values()) == 20
    assert sum(runs[s] for s in ("failed", "rolled_back")) == 1
    gates = samples["patchgate_gates_waiting"]
    assert (one(gates, kind="approval"), one(gates, kind="auto")) == (1, 0)
    outbox = {dict(k)["state"]: int(v) for k, v in samples["patchgate_outbox_rows"].items()}
    assert outbox["dead"] == 1
    assert outbox == {**dict.fromkeys(outbox, 0), **await by_state(db, OutboxItem.state)}
    assert samples["patchgate_outbox_oldest_pending_age_seconds"][()] >= 0
    assert engine.last_tick_at is not None
    assert samples["patchgate_engine_last_tick_timestamp_seconds"][()] == engine.last_tick_at
    assert samples["patchgate_leader"][()] == 1 and samples["patchgate_leader_epoch"][()] == 7
    assert samples["patchgate_leader_heartbeat_timestamp_seconds"][()] == now.timestamp()

    # time to patch: the run ends at the rig's (manual) clock, so the critical fixes took
    # exactly 3 days and the staging ones 1 day; prod-01's and demo-app's are not patched
    buckets = samples["patchgate_time_to_patch_seconds_bucket"]
    count = samples["patchgate_time_to_patch_seconds_count"]
    total = samples["patchgate_time_to_patch_seconds_sum"]

    def le(severity: str, bound: float | str) -> float:
        key = "+Inf" if bound == "+Inf" else str(float(bound))
        return one(buckets, severity=severity, le=key)

    assert (le("critical", DAY), le("critical", 3 * DAY), le("critical", "+Inf")) == (0, 2, 2)
    assert (one(count, severity="critical"), one(total, severity="critical")) == (2, 6 * DAY)
    assert (le("high", 6 * 3600), le("high", DAY), one(count, severity="high")) == (0, 2, 2)
    assert one(total, severity="high") == 2 * DAY
    for severity in ("medium", "low"):
        assert one(count, severity=severity) == 0
        assert all(le(severity, b) == 0 for b in TTP_BUCKETS)
    # fixes first seen by the rollouts' own refresh right before pinning (no advisory
    # data: severity unknown) and patched in the same run: time to patch 0
    assert (one(count, severity="unknown"), one(total, severity="unknown")) == (6, 0)


async def test_the_histogram_follows_new_patches_and_leadership_changes(
    db: Database, scraper: Scraper
) -> None:
    rig = Rig(db)
    await detect(db, rig, host="dev-01", severity="high")
    await detect(db, rig, host="stg-01", severity="critical")
    before = await scraper.scrape()
    assert one(before["patchgate_time_to_patch_seconds_count"], severity="high") == 0
    assert before["patchgate_engine_last_tick_timestamp_seconds"][()] == 0
    assert before["patchgate_leader_heartbeat_timestamp_seconds"][()] == 0

    engine = rig.engine()
    rollout = await rig.start()
    await engine.run_until_idle()  # dev is patched; staging waits at its gate
    rig.clock.advance(dt.timedelta(hours=2))
    waiting = await scraper.scrape()
    counts = waiting["patchgate_time_to_patch_seconds_count"]
    assert (one(counts, severity="high"), one(counts, severity="critical")) == (1, 0)
    assert one(waiting["patchgate_gates_waiting"], kind="approval") == 1

    await rig.approve_all(engine, rollout)  # staging's run ends two hours later
    scraper.leadership.is_leader, scraper.leadership.epoch = False, None
    after = await scraper.scrape()
    counts, sums = (
        after["patchgate_time_to_patch_seconds_count"],
        after["patchgate_time_to_patch_seconds_sum"],
    )
    assert (one(counts, severity="high"), one(sums, severity="high")) == (1, DAY)
    assert (one(counts, severity="critical"), one(sums, severity="critical")) == (1, DAY + 7200)
    assert one(after["patchgate_gates_waiting"], kind="approval") == 0
    assert after["patchgate_leader"][()] == 0 and after["patchgate_leader_epoch"][()] == 0
