"""How long a /metrics refresh takes on a large database (SQLite and PostgreSQL).

Fills a fresh database with 1,000 rollouts of 100 host runs (a tenth of them with the
fixed openssl), fix detections and outbox rows, then times ``Metrics.refresh`` +
exposition: the first scrape (the time-to-patch histogram is built), a scrape with nothing
changed (only the aggregate queries), a scrape after a healthy run finished (the
histogram's incremental path) and one after the fixes changed (full rebuild). The
baseline is ``SELECT 1`` through the same read session, measured in the same run.

    /tmp/pgvenv/bin/python bench/metrics_scrape.py [--host-runs 100000]
        [--fixes 20000] [--outbox 20000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.metrics import Metrics, package_compare
from tests.dbutil import fresh_database_url
from workflows.db import Database, create_database, read_only
from workflows.models import (
    Base,
    FixDetection,
    Host,
    HostRun,
    OutboxItem,
    Ring,
    Rollout,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STATES = ["healthy"] * 8 + ["failed", "rolled_back"]


async def fill(db: Database, *, host_runs: int, fixes: int, outbox: int) -> None:
    per_rollout = 100
    rollouts = host_runs // per_rollout
    hosts = max(fixes, per_rollout)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(
            sa.insert(Host),
            [{"name": f"h{i:06d}", "package_manager": "apt"} for i in range(hosts)],
        )
        await conn.execute(
            sa.insert(Rollout),
            [
                {
                    "id": r + 1,
                    "plan_name": "weekly",
                    "plan_hash": "0" * 64,
                    "plan_snapshot": {},
                    "state": "succeeded",
                    "requested_by": "U1",
                }
                for r in range(rollouts)
            ],
        )
        await conn.execute(
            sa.insert(Ring),
            [
                {"id": r + 1, "rollout_id": r + 1, "position": 0, "name": "all", "state": "done"}
                for r in range(rollouts)
            ],
        )
        batch = []
        for i in range(host_runs):
            r = i // per_rollout
            host = (r * per_rollout + i) % hosts
            state = STATES[i % len(STATES)]
            batch.append(
                {
                    "rollout_id": r + 1,
                    "ring_id": r + 1,
                    "host_name": f"h{host:06d}",
                    "state": state,
                    "after_versions": {"openssl": "3.0.13-1", "bash": "5.2"}
                    if i % 10 == 0
                    else {"bash": "5.2"},
                    "finished_at": T0 + dt.timedelta(days=1 + r / rollouts * 90),
                }
            )
            if len(batch) == 5000:
                await conn.execute(sa.insert(HostRun), batch)
                batch = []
        if batch:
            await conn.execute(sa.insert(HostRun), batch)
        await conn.execute(
            sa.insert(FixDetection),
            [
                {
                    "host": f"h{i:06d}",
                    "package": "openssl",
                    "candidate": "3.0.13-1",
                    "severity": ("critical", "high", "medium", "low")[i % 4],
                    "published": T0 - dt.timedelta(days=i % 5) if i % 2 else None,
                    "advisories": [],
                    "cves": [],
                    "first_detected_at": T0,
                    "last_detected_at": T0,
                }
                for i in range(fixes)
            ],
        )
        await conn.execute(
            sa.insert(OutboxItem),
            [
                {
                    "key": f"k{i}",
                    "topic": "notify",
                    "payload": {},
                    "state": "delivered" if i % 20 else "pending",
                    "created_at": T0,
                    "next_attempt_at": T0,
                }
                for i in range(outbox)
            ],
        )


async def timed(coro_factory, repeat: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await coro_factory()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    db = create_database(url)
    try:
        start = time.perf_counter()
        await fill(db, host_runs=args.host_runs, fixes=args.fixes, outbox=args.outbox)
        filled = time.perf_counter() - start
        if db.dialect == "postgresql":
            async with db.engine.connect() as conn:
                await conn.execute(sa.text("ANALYZE"))
        metrics = Metrics(compare=package_compare)

        async def scrape() -> None:
            await metrics.refresh(db, leader=True, epoch=1)
            metrics.exposition()

        async def baseline() -> None:
            async with read_only(db) as session:
                await session.execute(sa.select(1))

        base = await timed(baseline, 20)
        cold = await timed(scrape, 1)
        warm = await timed(scrape, 10)

        later = [T0 + dt.timedelta(days=100)]

        async def run_finished() -> None:  # one more healthy run: the incremental path
            later[0] += dt.timedelta(minutes=1)
            async with db.engine.begin() as conn:
                await conn.execute(
                    sa.update(HostRun).where(HostRun.id == 1).values(finished_at=later[0])
                )
            await scrape()

        async def fixes_changed() -> None:  # as after an assessment: everything again
            metrics.time_to_patch.key = None
            await scrape()

        incremental = await timed(run_finished, 3)
        rebuilt = await timed(fixes_changed, 3)
        patched = sum(len(v) for v in metrics.time_to_patch.observations.values())
        return {
            "fill_s": filled,
            "baseline_ms": base,
            "cold_ms": cold,
            "warm_ms": warm,
            "rebuild_ms": rebuilt,
            "incremental_ms": incremental,
            "patched_fixes": patched,
        }
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host-runs", type=int, default=100_000)
    parser.add_argument("--fixes", type=int, default=20_000)
    parser.add_argument("--outbox", type=int, default=20_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    print(
        f"host runs {args.host_runs:,}, fix detections {args.fixes:,}, outbox rows "
        f"{args.outbox:,}; times are medians"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            with fresh_database_url(backend, Path(tmp)) as url:
                r = await measure(url, args)
            print(
                f"{backend:10} fill {r['fill_s']:.1f}s | SELECT 1 {r['baseline_ms']:.2f} ms | "
                f"first scrape {r['cold_ms']:.0f} ms | unchanged {r['warm_ms']:.1f} ms "
                f"({r['warm_ms'] / r['baseline_ms']:.0f}x SELECT 1) | a run finished "
                f"{r['incremental_ms']:.0f} ms | fixes changed (full rebuild) "
                f"{r['rebuild_ms']:.0f} ms | {r['patched_fixes']:,} patched fixes"
            )


if __name__ == "__main__":
    asyncio.run(main())
