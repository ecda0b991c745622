"""Engine bookkeeping at scale (issue 24, item 4): a whole four-ring rollout over N
simulated hosts that take no time (the recording executor), on SQLite and PostgreSQL.

    PYTHONPATH=$PWD python bench/engine_scale.py                 # 2,000 and 10,000 hosts
    PYTHONPATH=$PWD python bench/engine_scale.py --huge          # and 100,000
    PYTHONPATH=$PWD python bench/engine_scale.py --sizes 2000 --backends sqlite --profile
    PYTHONPATH=$PWD python bench/engine_scale.py --sim-state 2000,8000   # executor file cost

Each (backend, size) runs in a child process of its own (so peak RSS is the run's). The
rollout: four rings (1 %, 9 %, 30 %, 60 % of the fleet, batches of 10 % of a ring), no
gates, the engine's default concurrency (50), the engine's pre-pin assessment refresh of
every host included. Printed per run:

- wall time, hosts/s, process CPU per host (user+sys of the whole process: the
  driver's thread included), peak RSS;
- SQL statements per host, by kind and table (a SQLAlchemy ``before_cursor_execute``
  counter; an executemany counts once), and rows per host in each table at the end;
- the longest wait of a one-row write transaction started every 0.25 s during the run
  (what the leader heartbeat and the outbox feel) and of a ``SELECT 1`` through the
  pool (what ``/healthz`` waits on), and the event loop's longest lag;
- with ``--profile``: cProfile's cumulative seconds in the bookkeeping (audit appends,
  transactions, outbox rows, JSON) of the event loop's thread.

``--sim-state SIZES`` times the simulated executor alone with a state file: N applies,
seconds per apply at each size (linear = the same per apply at every size).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integrations.testing.executor import (  # noqa: E402
    RecordingExecutor,
    RecordingHealthChecker,
    SimHost,
    SimState,
)
from tests.dbutil import fresh_database_url  # noqa: E402
from workflows.clock import ManualClock  # noqa: E402
from workflows.db import create_database, read_only, unit_of_work  # noqa: E402
from workflows.engine import Engine, EngineDeps  # noqa: E402
from workflows.gates import Actor  # noqa: E402
from workflows.models import Base, HostRun, LeaderState, Rollout  # noqa: E402
from workflows.plans import PatchPlan  # noqa: E402
from workflows.ports import InventoryHost  # noqa: E402
from workflows.requests import start_rollout  # noqa: E402

RINGS = (("canary", 0.01), ("early", 0.09), ("main", 0.30), ("rest", 0.60))
REQUESTER = "U0BENCH"
PARTS = (
    ("workflows/audit", "audit (hashing, bodies)"),
    ("workflows/outbox", "outbox rows"),
    ("workflows/engine", "engine steps"),
    ("workflows/", "other workflows code"),
    ("integrations/", "simulated executor"),
    ("sqlalchemy/orm", "SQLAlchemy ORM"),
    ("sqlalchemy/", "SQLAlchemy core/engine"),
    ("aiosqlite", "aiosqlite"),
    ("psycopg", "psycopg"),
    ("json/", "JSON"),
    ("asyncio/", "asyncio"),
    ("threading", "thread hand-off"),
)


def part_of(file: str, func: str) -> str:
    """Which part of the program a function's own time counts for."""
    if file == "~":  # built-ins: by name
        if "json" in func or "dumps" in func or "loads" in func:
            return "JSON"
        if "sha256" in func or "hmac" in func or "digest" in func:
            return "audit (hashing, bodies)"
        if "sqlite3" in func or "execute" in func or "fetch" in func:
            return "driver calls (C)"
        if "acquire" in func or "wait" in func or "select" in func or "poll" in func:
            return "waiting (idle)"
        return "built-ins"
    for fragment, label in PARTS:
        if fragment in file:
            return label
    return "other"


class Inventory:
    def __init__(self, hosts: list[InventoryHost]) -> None:
        self._hosts = hosts

    def hosts(self) -> list[InventoryHost]:
        return self._hosts


def fleet(n: int) -> list[InventoryHost]:
    hosts: list[InventoryHost] = []
    start = 0
    for i, (name, share) in enumerate(RINGS):
        count = n - start if i == len(RINGS) - 1 else max(1, round(n * share))
        hosts += [
            InventoryHost(name=f"{name}-{j:06d}", groups=frozenset({name}))
            for j in range(start, start + count)
        ]
        start += count
    return hosts


def plan() -> PatchPlan:
    return PatchPlan.model_validate(
        {
            "name": "bench",
            "packages": {"include": ["*"]},
            "reboot": "if-required",
            "health_checks": [{"name": "http", "type": "http", "url": "http://{address}/h"}],
            "slack": {"channel": "C0BENCH"},
            "rings": [
                {"name": name, "hosts": f"group:{name}", "batch": "10%", "failure_budget": 5}
                for name, _ in RINGS
            ],
        }
    )


def executor_for(hosts: list[InventoryHost]) -> RecordingExecutor:
    state = SimState(
        repo={"openssl": ["3.0.11-1", "3.0.13-1"], "demo-app": ["1.0", "1.1"]},
        security=["openssl=3.0.13-1"],
    )
    for h in hosts:
        state.hosts[h.name] = SimHost(
            installed={"openssl": "3.0.11-1", "demo-app": "1.0", "bash": "5.2"}
        )
    return RecordingExecutor(state)


def classify(statement: str) -> str:
    s = " ".join(statement.split())
    verb = s.split(" ", 1)[0].upper()
    if verb == "SELECT" and not re.search(r"\bFROM\b", s, re.I):
        m = re.match(r"SELECT\s+(\w+)", s, re.I)
        return f"SELECT {m.group(1) if m else '-'}()"
    if verb == "SELECT":
        m = re.search(r"\bFROM\s+\"?(\w+)", s, re.I)
        return f"SELECT {m.group(1) if m else '-'}"
    if verb == "INSERT":
        m = re.match(r"INSERT INTO\s+\"?(\w+)", s, re.I)
        return f"INSERT {m.group(1) if m else '?'}"
    if verb == "UPDATE":
        m = re.match(r"UPDATE\s+\"?(\w+)", s, re.I)
        return f"UPDATE {m.group(1) if m else '?'}"
    if verb == "DELETE":
        m = re.match(r"DELETE FROM\s+\"?(\w+)", s, re.I)
        return f"DELETE {m.group(1) if m else '?'}"
    return verb


async def probe(db: Any, stop: asyncio.Event, out: dict[str, float]) -> None:
    """A heartbeat-like write and a /healthz-like read every 0.25 s; the loop's lag."""
    out.update(write_max=0.0, read_max=0.0, lag_max=0.0, probes=0)
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(0.25)
        out["lag_max"] = max(out["lag_max"], time.monotonic() - t - 0.25)
        t = time.monotonic()
        try:
            async with asyncio.timeout(5.0), read_only(db) as session:  # /healthz's bound
                await session.execute(sa.select(1))
        except Exception:
            out["read_failed"] = out.get("read_failed", 0) + 1
        out["read_max"] = max(out["read_max"], time.monotonic() - t)
        t = time.monotonic()
        try:
            async with unit_of_work(db) as session:
                await session.execute(
                    sa.update(LeaderState)
                    .where(LeaderState.name == "bench-probe")
                    .values(epoch=LeaderState.epoch + 1)
                )
        except Exception:  # "database is locked" after SQLite's 30 s busy timeout
            out["write_failed"] = out.get("write_failed", 0) + 1
        out["write_max"] = max(out["write_max"], time.monotonic() - t)
        out["probes"] += 1


def time_steps(longest: dict[str, float]) -> None:
    """Record the longest transaction of each engine step (StepContext.tx, wrapped)."""
    from contextlib import asynccontextmanager

    from workflows.engine._context import StepContext

    original = StepContext.tx

    @asynccontextmanager
    async def timed(self: StepContext, step: str) -> Any:
        started = time.monotonic()
        async with original(self, step) as session:
            yield session
        spent = time.monotonic() - started
        longest[step] = max(longest.get(step, 0.0), spent)

    StepContext.tx = timed  # type: ignore[method-assign]


async def one_run(backend: str, size: int, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, fresh_database_url(backend, Path(tmp)) as url:
        db = create_database(url)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with unit_of_work(db) as session:
            session.add(LeaderState(name="bench-probe", epoch=0))
        hosts = fleet(size)
        executor = executor_for(hosts)
        clock = ManualClock(dt.datetime(2026, 1, 4, 2, 0, tzinfo=dt.UTC))
        engine = Engine(
            EngineDeps(
                db=db,
                executor=executor,
                health=RecordingHealthChecker(executor),
                inventory=Inventory(hosts),
                clock=clock,
            )
        )
        statements: Counter[str] = Counter()
        longest: dict[str, float] = {}
        time_steps(longest)

        def count(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
            statements[classify(statement)] += 1

        sa.event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        async with unit_of_work(db) as session:
            result = await start_rollout(
                session,
                plan=plan(),
                actor=Actor(REQUESTER),
                operators=frozenset({REQUESTER}),
                now=clock.now(),
            )
        assert isinstance(result, Rollout), result
        statements.clear()
        stop = asyncio.Event()
        waits: dict[str, float] = {}
        prober = asyncio.create_task(probe(db, stop, waits))
        profiler = cProfile.Profile() if profile else None
        cpu0, wall0 = time.process_time(), time.monotonic()
        if profiler:
            profiler.enable()
        await engine.run_until_idle(max_ticks=1_000_000)
        if profiler:
            profiler.disable()
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        stop.set()
        await prober
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        # the probe's own statements
        statements["SELECT 1()"] -= int(waits["probes"])
        statements["UPDATE leader_state"] -= int(waits["probes"])
        async with read_only(db) as session:
            states = Counter((await session.scalars(sa.select(HostRun.state))).all())
            rows = {}
            for table in Base.metadata.sorted_tables:
                rows[table.name] = await session.scalar(
                    sa.select(sa.func.count()).select_from(table)
                )
            rollout = await session.get(Rollout, result.id)
        await db.dispose()
        out: dict[str, Any] = {
            "backend": backend,
            "size": size,
            "state": rollout.state if rollout else None,
            "hosts": dict(states),
            "wall": wall,
            "cpu": cpu,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "statements": {k: v for k, v in statements.items() if v},
            "rows": {k: v for k, v in rows.items() if v},
            "waits": waits,
            "longest_tx": dict(sorted(longest.items(), key=lambda kv: -kv[1])[:5]),
        }
        if profiler:
            stats = pstats.Stats(profiler)
            by_part: Counter[str] = Counter()
            for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
                by_part[part_of(file, func)] += tt
            out["profile"] = dict(by_part.most_common(12))
            out["profile_total"] = sum(by_part.values())
        return out


def sim_state_cost(sizes: list[int]) -> None:
    """CPU and bytes written per apply of the simulated executor with a state file (a
    snapshot and an append-only journal), at each size: linear = the same per apply."""
    print("\nsimulated executor with a state file (apply every host once)")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            hosts = fleet(n)
            state = executor_for(hosts).state
            executor = RecordingExecutor(state, state_file=Path(tmp) / "sim.json")
            executor.save()
            store = executor._store
            assert store is not None
            written = store.bytes_written

            async def go(
                ex: RecordingExecutor = executor, hosts: list[InventoryHost] = hosts
            ) -> None:
                for h in hosts:
                    await ex.apply(h, {"openssl": "3.0.13-1"}, op_id=f"op-{h.name}")

            t = time.process_time()
            asyncio.run(go())
            spent = time.process_time() - t
            print(
                f"  {n:>7,} hosts: {spent:7.2f} s CPU, {spent / n * 1000:7.3f} ms per apply, "
                f"{(store.bytes_written - written) / n:7.0f} bytes written per apply "
                f"({store.compactions} compactions)"
            )


def report(r: dict[str, Any]) -> None:
    n = r["size"]
    st, rows = Counter(r["statements"]), r["rows"]
    total = sum(st.values())
    audit = sum(v for k, v in st.items() if k.endswith(("events", "audit_head")))
    audit += st.get("SELECT pg_advisory_xact_lock()", 0)
    print(
        f"\n{r['backend']} {n:,} hosts: rollout {r['state']}, hosts {r['hosts']}\n"
        f"  wall {r['wall']:.1f} s ({n / r['wall']:.1f} hosts/s), "
        f"CPU {r['cpu'] / n * 1000:.1f} ms/host, peak RSS {r['rss_mb']:.0f} MB\n"
        f"  statements {total / n:.1f}/host (audit events+head {audit / total:.0%}); "
        f"rows {sum(rows.values()) / n:.1f}/host"
    )
    print("  statements/host: " + ", ".join(f"{k} {v / n:.2f}" for k, v in st.most_common(12)))
    print("  rows/host: " + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(rows.items())))
    w = r["waits"]
    print(
        f"  longest wait: write {w['write_max'] * 1000:.0f} ms, pool read (healthz) "
        f"{w['read_max'] * 1000:.0f} ms, event-loop lag {w['lag_max'] * 1000:.0f} ms "
        f"({int(w['probes'])} probes; failed: {int(w.get('write_failed', 0))} writes, "
        f"{int(w.get('read_failed', 0))} reads over 5 s)"
    )
    if "longest_tx" in r:
        print(
            "  longest transactions: "
            + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in r["longest_tx"].items())
        )
    if "profile" in r:
        total_p = r["profile_total"] or 1.0
        print(
            "  profile (own time of the loop thread's functions, of "
            f"{total_p:.1f} s): "
            + ", ".join(f"{k} {v:.1f} ({v / total_p:.0%})" for k, v in r["profile"].items())
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--huge", action="store_true", help="add 100,000 hosts")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sim-state", default="", help="sizes for the executor alone")
    parser.add_argument("--json", action="store_true", help="also print each run's JSON")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        backend, size = args.one
        print(json.dumps(asyncio.run(one_run(backend, int(size), args.profile))))
        return
    if args.sim_state:
        sim_state_cost([int(s) for s in args.sim_state.split(",")])
        return
    sizes = [int(s) for s in args.sizes.split(",")] + ([100_000] if args.huge else [])
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
    ).stdout.strip() or str(ROOT)
    print(f"engine_scale at {rev}, load {os.getloadavg()[0]:.1f}")
    for size in sizes:
        for backend in args.backends.split(","):
            cmd = [sys.executable, __file__, "--one", backend, str(size)]
            if args.profile:
                cmd.append("--profile")
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                where = [
                    line.strip()
                    for line in done.stderr.splitlines()
                    if "workflows/" in line or "engine_scale.py" in line
                ]
                last = done.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"\n{backend} {size:,}: FAILED: {last[0]}\n  " + "\n  ".join(where[-6:]))
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            report(result)
            if args.json:
                print(json.dumps(result))


if __name__ == "__main__":
    main()
