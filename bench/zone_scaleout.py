"""Scale-out benchmark (issue 24, item 5): a whole rollout through the real engine, the
hosts' work done by 1, 2, 4 … real ``patchgate worker`` processes on this machine.

    PYTHONPATH=$PWD .venv/bin/python bench/zone_scaleout.py            # modest: ~2-3 min
    PYTHONPATH=$PWD .venv/bin/python bench/zone_scaleout.py --hosts 400 --workers 1,2,4,8 \
        --apply-delay 5 --slots 20 --database postgresql

The hosts are simulated (integrations/testing/shared.py, the recording executor that
the leader and the workers share through a state file): every apply takes
``--apply-delay`` seconds between the host's change and its result, as a detached
command on a real host does. With W workers the hosts are spread over W zones
(``patchgate_zone`` = z0 … z{W-1}), one worker of ``--slots`` calls per zone, on a
private redis-server (started and stopped by the bench). The leader is this process:
the real Engine (SQLite file or a fresh PostgreSQL database), the ZoneRouter and its
Celery client, driving a two-ring plan without gates (a canary ring, then the fleet in
batches of ``--batch``) from assessment to the last health check. Each run starts from
a fresh database, state file and broker; ``workers=0`` is the baseline in the same run:
every host on the leader itself (no zone, no broker), same apply delay.

Printed per run: wall time of the rollout, hosts/s, the leader's CPU per host (this
process, every thread: engine, Celery client, zone monitor) and the workers' CPU per
host (user+sys of the worker processes over the rollout, from /proc), and the
apply-bound ceiling (W x slots / apply delay) beside the measured rate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integrations.testing.executor import RecordingHealthChecker  # noqa: E402
from integrations.testing.shared import SharedRecordingExecutor  # noqa: E402
from integrations.zones.client import ZoneClient, ZoneOptions  # noqa: E402
from integrations.zones.router import ZoneHealthChecker, ZoneRouter  # noqa: E402
from tests.enginekit import Rig, make_plan  # noqa: E402
from tests.zonekit import Fleet, PrivateRedis  # noqa: E402
from workflows.db import Database, create_database  # noqa: E402
from workflows.engine import Engine, EngineDeps  # noqa: E402
from workflows.models import Base  # noqa: E402
from workflows.ports import InventoryHost  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    workers: int
    hosts: int
    wall: float
    leader_cpu: float
    worker_cpu: float
    state: str
    healthy: int
    resent: int

    @property
    def rate(self) -> float:
        return self.hosts / self.wall


def proc_cpu(pid: int) -> float:
    """User+sys seconds of a live process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_hosts(count: int, zones: int) -> list[InventoryHost]:
    canary = max(2, count // 50)
    hosts = []
    for i in range(count):
        group = "canary" if i < canary else "fleet"
        zone = {"patchgate_zone": f"z{i % zones}"} if zones else {}
        hosts.append(InventoryHost(name=f"h{i:05d}", groups=frozenset({group}), vars=zone))
    return hosts


def plan(batch: int) -> object:
    return make_plan(
        rings=[
            {"name": "canary", "hosts": "group:canary", "batch": "100%", "failure_budget": 0},
            {"name": "fleet", "hosts": "group:fleet", "batch": batch, "failure_budget": 0},
        ]
    )


async def make_db(kind: str, directory: Path) -> tuple[Database, object]:
    from tests.dbutil import fresh_database_url

    ctx = fresh_database_url(kind, directory)
    url = ctx.__enter__()
    db = create_database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return db, ctx


async def one_run(args: argparse.Namespace, workers: int, directory: Path) -> Result:
    directory.mkdir()  # noqa: ASYNC240 (once per run, before the clock)
    db, ctx = await make_db(args.database, directory)
    redis: PrivateRedis | None = None
    fleet: Fleet | None = None
    router: ZoneRouter | None = None
    try:
        rig = Rig(db, hosts=make_hosts(args.hosts, workers))
        state_file = directory / "hosts.json"
        rig.executor.state_file = state_file
        rig.executor.save()
        local = SharedRecordingExecutor(state_file=state_file)
        local.detached_delay = args.apply_delay
        executor: object = local
        health: object = RecordingHealthChecker(local)
        if workers:
            redis = PrivateRedis(directory)
            redis.start()
            fleet = Fleet(broker=redis.url, directory=directory)
            for w in range(workers):
                fleet.start(
                    f"z{w}",
                    slots=args.slots,
                    PATCHGATE_RECORDING_APPLY_DELAY=str(args.apply_delay),
                    PATCHGATE_LOG_LEVEL="WARNING",
                )
            url = redis.url
            router = ZoneRouter(
                local,
                calls=lambda: ZoneClient(
                    ZoneOptions(broker_url=url, heartbeat=1.0, lost_after=10.0, wait_for_worker=120)
                ),
            )
            executor, health = router, ZoneHealthChecker(RecordingHealthChecker(local), router)
            # Warm up: every zone answers (the workers are up) before the clock starts.
            quiet = logging.getLogger("patchgate.zones")
            quiet.setLevel(logging.CRITICAL)  # "no live worker" while they start
            for w in range(workers):
                await router.facts(InventoryHost(name="h00000", vars={"patchgate_zone": f"z{w}"}))
            quiet.setLevel(logging.NOTSET)
        engine = Engine(
            EngineDeps(
                db=db,
                executor=executor,  # type: ignore[arg-type]
                health=health,  # type: ignore[arg-type]
                inventory=rig.inventory,
                clock=rig.clock,
                concurrency=args.concurrency,
            )
        )
        pids = [w.proc.pid for w in fleet.workers] if fleet else []
        cpu0, wcpu0, t0 = self_cpu(), sum(proc_cpu(p) for p in pids), time.monotonic()
        rollout_id = await rig.start(plan(args.batch))  # type: ignore[arg-type]
        await rig.approve_all(engine, rollout_id)
        wall = time.monotonic() - t0
        cpu, wcpu = self_cpu() - cpu0, sum(proc_cpu(p) for p in pids) - wcpu0
        states = await rig.host_states(rollout_id)
        state = (await rig.rollout(rollout_id)).state
        resent = sum(router.client.resent.values()) if router and router.client else 0  # type: ignore[attr-defined]
        return Result(
            workers=workers,
            hosts=args.hosts,
            wall=wall,
            leader_cpu=cpu,
            worker_cpu=wcpu,
            state=str(state),
            healthy=sum(1 for s in states.values() if s == "healthy"),
            resent=resent,
        )
    finally:
        if router is not None:
            router.close_zones()
        if fleet is not None:
            fleet.stop_all()
        if redis is not None:
            redis.stop()
        await db.dispose()
        ctx.__exit__(None, None, None)  # type: ignore[attr-defined]


def report(r: Result, args: argparse.Namespace) -> str:
    ceiling = r.workers * args.slots / args.apply_delay if r.workers else float("nan")
    ceiling = min(ceiling, args.concurrency / args.apply_delay) if r.workers else ceiling
    return (
        f"| {r.workers or 'leader only'} | {r.hosts} | {r.wall:7.1f} s | {r.rate:6.2f} "
        f"| {ceiling:6.2f} | {1000 * r.leader_cpu / r.hosts:6.1f} ms "
        f"| {1000 * r.worker_cpu / r.hosts:6.1f} ms "
        f"| {r.leader_cpu / r.wall:5.2f} | {r.state} {r.healthy}/{r.hosts} | {r.resent} |"
    )


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", type=int, default=120)
    p.add_argument("--workers", default="0,1,2,4", help="comma-separated; 0 = leader only")
    p.add_argument("--apply-delay", type=float, default=3.0, help="seconds per apply")
    p.add_argument("--slots", type=int, default=10, help="concurrent calls per worker")
    p.add_argument("--batch", type=int, default=60, help="fleet ring batch size")
    p.add_argument("--concurrency", type=int, default=50, help="the engine's call bound")
    p.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = p.parse_args()
    load = os.getloadavg()
    print(
        f"# {args.hosts} hosts, apply {args.apply_delay}s, {args.slots} slots/worker, "
        f"batch {args.batch}, engine concurrency {args.concurrency}, {args.database}; "
        f"{os.cpu_count()} cores, load {load[0]:.1f} at start"
    )
    print(
        "| workers | hosts | wall | hosts/s | apply-bound hosts/s | leader CPU/host "
        "| workers' CPU/host | leader cores busy | end | re-sent |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="zone-scaleout-") as tmp:
        for n in (int(x) for x in args.workers.split(",")):
            result = await one_run(args, n, Path(tmp) / f"w{n}")
            print(report(result, args), flush=True)
    print(f"# load {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    asyncio.run(main())
