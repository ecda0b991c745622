"""How long `audit prune` takes, and how long it holds up audit appends, on SQLite and
PostgreSQL.

Builds a valid chain of N events (bulk inserts; bodies and hashes as ``audit.append``
makes them), then prunes the older 90% while another process appends one event every
50 ms, each in its own transaction. Prints the prune's wall time, the archive's size, the
longest and the median append latency during the prune, and, as the baseline measured in
the same run, the append latency with nothing else running.

    /tmp/pgvenv/bin/python bench/audit_prune.py [--events 200000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dbutil import fresh_database_url
from workflows import audit
from workflows.db import Database, create_database, unit_of_work
from workflows.models import AuditHead, Base, Event

REPO = Path(__file__).resolve().parents[1]
APPENDER = """
import asyncio, datetime as dt, sys, time
from pathlib import Path
from workflows import audit
from workflows.db import create_database, unit_of_work

async def main():
    db = create_database(sys.argv[1])
    stop, out, i = Path(sys.argv[2]), [], 0
    while not stop.exists():
        start = time.perf_counter()
        async with unit_of_work(db) as session:
            await audit.append(session, kind="bench.append", data={"i": i},
                               at=dt.datetime.now(dt.UTC))
        out.append(time.perf_counter() - start)
        i += 1
        await asyncio.sleep(0.05)
    await db.dispose()
    print(" ".join(str(x) for x in out))

asyncio.run(main())
"""
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
KEY = b"bench-key-" * 4


async def build_chain(db: Database, n: int) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    prev = audit.GENESIS_HASH
    step = (NOW - dt.timedelta(days=30) - T0) / n
    batch: list[dict[str, object]] = []
    last_id = 0
    for seq in range(1, n + 1):
        at = T0 + step * seq
        body = audit.canonical_json(
            {
                "actor": "U0BENCH",
                "at": audit.format_time(at),
                "data": {"host": f"h{seq % 5000:05d}", "exit_code": 0, "duration": 1.5},
                "kind": "host.apply.result",
                "rollout_id": seq // 500,
                "seq": seq,
            }
        )
        digest = audit.chain_hash(prev, body)
        batch.append(
            {
                "id": seq,
                "at": at,
                "kind": "host.apply.result",
                "rollout_id": seq // 500,
                "actor": "U0BENCH",
                "body": body,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev, last_id = digest, seq
        if len(batch) == 10_000:
            async with db.engine.begin() as conn:
                await conn.execute(sa.insert(Event), batch)
            batch = []
    async with db.engine.begin() as conn:
        if batch:
            await conn.execute(sa.insert(Event), batch)
        await conn.execute(
            sa.insert(AuditHead),
            [{"id": audit.HEAD_ID, "last_event_id": last_id, "last_hash": prev, "count": n}],
        )
        if db.dialect == "postgresql":
            await conn.execute(sa.text("SELECT setval('events_id_seq', :n)"), {"n": n})


async def append_once(db: Database, i: int) -> float:
    start = time.perf_counter()
    async with unit_of_work(db) as session:
        await audit.append(session, kind="bench.append", data={"i": i}, at=NOW)
    return time.perf_counter() - start


async def measure(url: str, n: int, archive: Path) -> dict[str, float]:
    db = create_database(url)
    try:
        await build_chain(db, n)
        idle = [await append_once(db, i) for i in range(20)]
        # the appender is another process (as the leader would be), so what it measures is
        # the lock, not this process's event loop being busy with the prune
        stop = archive.parent / f"stop-{db.dialect}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            APPENDER,
            url,
            str(stop),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        await asyncio.sleep(2)  # let it start appending
        start = time.perf_counter()
        result = await audit.prune(
            db,
            before=T0 + (NOW - dt.timedelta(days=30) - T0) * 0.9,
            now=NOW,
            archive_dir=archive,
            key=KEY,
            actor="U0BENCH",
            min_age=dt.timedelta(days=1),
        )
        took = time.perf_counter() - start
        stop.touch()
        out, _ = await proc.communicate()
        latencies = [float(x) for x in out.split()]
        verify_start = time.perf_counter()
        verified = await audit.verify_database(db, key=KEY)
        verify_took = time.perf_counter() - verify_start
        assert result.archive is not None
        return {
            "pruned": result.count,
            "prune_s": took,
            "archive_mb": result.archive.stat().st_size / 1e6,
            "append_idle_ms": statistics.median(idle) * 1000,
            "append_median_ms": statistics.median(latencies) * 1000,
            "append_max_ms": max(latencies) * 1000,
            "appends": len(latencies),
            "left": verified.count,
            "verify_s": verify_took,
        }
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            with fresh_database_url(backend, Path(tmp)) as url:
                r = await measure(url, args.events, Path(tmp) / f"archive-{backend}")
            print(
                f"{backend:10} pruned {r['pruned']:,.0f} of {args.events:,} "
                f"in {r['prune_s']:.1f} s "
                f"(archive {r['archive_mb']:.1f} MB) | append alone {r['append_idle_ms']:.1f} ms, "
                f"during prune median {r['append_median_ms']:.1f} ms, max "
                f"{r['append_max_ms']:.0f} ms ({r['appends']:.0f} appends) | verify of the "
                f"{r['left']:,.0f} left {r['verify_s']:.1f} s"
            )


if __name__ == "__main__":
    asyncio.run(main())
