"""Evidence-bundle benchmark: 1,000,000 audit events and 100,000 host runs over one year,
then a bundle for one quarter (and for the whole year, to show memory stays bounded), on
SQLite and PostgreSQL. Prints wall time, peak RSS and the ratio to a baseline measured in
the same run: plainly streaming the quarter's events and host runs with the same driver.

    python bench/report.py                       # both backends, full size
    python bench/report.py --backends sqlite --events 100000 --host-runs 10000

PostgreSQL: a dedicated database (``--pg-url``, default ``patchgate_bench`` on
127.0.0.1:5432, user postgres), dropped and created again by the bench. SQLite: a file in
a temporary directory. Each build runs in a child process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workflows import audit
from workflows.db import create_database, normalise_database_url
from workflows.models import (
    Approval,
    AuditHead,
    Base,
    Event,
    FixDetection,
    Gate,
    Host,
    HostAssessment,
    HostRun,
    Ring,
    Rollout,
)

UTC = dt.UTC
YEAR_START = dt.datetime(2025, 1, 1, tzinfo=UTC)
YEAR_END = dt.datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = (dt.datetime(2025, 10, 1, tzinfo=UTC), YEAR_END)  # Q4 2025
HOSTS = 2000
RINGS = ("dev", "staging", "prod")
KINDS = ("host.command", "host.state", "rollout.state", "gate.vote", "outbox.delivered")
CHUNK = 20_000
SEVERITIES = ("critical", "high", "medium", "low")


def _chunks(rows: list[dict[str, Any]]) -> Any:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def _insert(conn: sa.Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for part in _chunks(rows):
        conn.execute(sa.insert(table), part)


def generate(url: str, *, events: int, host_runs: int, seed: int = 7) -> dict[str, float]:
    """Fill an empty schema; returns seconds per step."""
    rnd = random.Random(seed)
    urls = normalise_database_url(url)
    engine = sa.create_engine(urls.sync_url)
    timings: dict[str, float] = {}
    span = (YEAR_END - YEAR_START).total_seconds()
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        Base.metadata.create_all(conn)
    started = time.perf_counter()
    with engine.begin() as conn:
        hosts = [f"host-{i:05d}" for i in range(HOSTS)]
        _insert(
            conn,
            Host,
            [
                {
                    "name": h,
                    "groups": [RINGS[i % 3]],
                    "tags": [],
                    "internet_facing": False,
                    "environment": RINGS[i % 3],
                    "criticality": "high",
                    "package_manager": "apt",
                    "reachable": i % 97 != 0,
                    "facts_at": YEAR_END - dt.timedelta(hours=1),
                    "created_at": YEAR_START - dt.timedelta(days=30),
                    "updated_at": YEAR_START,
                }
                for i, h in enumerate(hosts)
            ],
        )
        # weekly assessments, two security fixes found per host per month
        assessments, detections = [], []
        for i, h in enumerate(hosts):
            for week in range(52):
                assessments.append(
                    {
                        "host": h,
                        "assessed_at": YEAR_START + dt.timedelta(weeks=week, hours=i % 24),
                        "fixes": 2,
                    }
                )
            for month in range(12):
                found = YEAR_START + dt.timedelta(days=30 * month + i % 7)
                for n, package in enumerate(("openssl", "libc6")):
                    detections.append(
                        {
                            "host": h,
                            "package": package,
                            "current": f"1.{month}",
                            "candidate": f"1.{month + 1}",
                            "severity": SEVERITIES[(i + month + n) % 4],
                            "cvss": None,
                            "published": found - dt.timedelta(days=2) if n == 0 else None,
                            "advisories": [f"DSA-{month}{n}"],
                            "cves": [],
                            "first_detected_at": found,
                            "last_detected_at": found,
                        }
                    )
        _insert(conn, HostAssessment, assessments)
        _insert(conn, FixDetection, detections)
    timings["hosts, assessments, detections"] = time.perf_counter() - started

    started = time.perf_counter()
    per_rollout = 100
    rollouts = max(1, host_runs // per_rollout)
    with engine.begin() as conn:
        rollout_rows, ring_rows, gate_rows, vote_rows, run_rows = [], [], [], [], []
        ring_id = gate_id = 0
        for r in range(1, rollouts + 1):
            start = YEAR_START + dt.timedelta(seconds=span * (r - 1) / rollouts)
            state = "rolled_back" if r % 25 == 0 else "succeeded"
            rollout_rows.append(
                {
                    "id": r,
                    "plan_name": "weekly",
                    "plan_hash": "0" * 64,
                    "plan_snapshot": {},
                    "state": state,
                    "requested_by": "U0OPS",
                    "source": "schedule",
                    "emergency": False,
                    "patchset_hash": f"{r:064x}",
                    "epoch": 1,
                    "created_at": start,
                    "updated_at": start,
                    "started_at": start,
                    "finished_at": start + dt.timedelta(hours=6),
                }
            )
            rings = []
            for position, name in enumerate(RINGS):
                ring_id += 1
                rings.append(ring_id)
                ring_rows.append(
                    {
                        "id": ring_id,
                        "rollout_id": r,
                        "position": position,
                        "name": name,
                        "state": "done",
                        "host_count": per_rollout // 3,
                        "batch_size": 10,
                        "batch_count": 4,
                        "failure_budget": 2,
                        "next_batch": 4,
                    }
                )
                if position:
                    gate_id += 1
                    opened = start + dt.timedelta(hours=2 * position)
                    gate_rows.append(
                        {
                            "id": gate_id,
                            "rollout_id": r,
                            "ring_id": ring_id,
                            "kind": "approval",
                            "state": "approved",
                            "quorum": 1,
                            "patchset_hash": f"{r:064x}",
                            "untested_platforms": [],
                            "opened_at": opened,
                            "escalated": False,
                            "decided_at": opened + dt.timedelta(minutes=rnd.randint(5, 240)),
                            "decided_by": "U0APPROVE",
                        }
                    )
                    vote_rows.append(
                        {
                            "gate_id": gate_id,
                            "user_id": "U0APPROVE",
                            "decision": "approve",
                            "patchset_hash": f"{r:064x}",
                            "source": "slack",
                            "created_at": opened + dt.timedelta(minutes=5),
                        }
                    )
            month = min(11, int((start - YEAR_START).days // 30.5))
            for k in range(per_rollout):
                host = hosts[(r * per_rollout + k) % HOSTS]
                finished = start + dt.timedelta(hours=1 + k % 5)
                healthy = k % 40 != 0
                run_rows.append(
                    {
                        "rollout_id": r,
                        "ring_id": rings[k % 3],
                        "host_name": host,
                        "batch": k % 4,
                        "state": "healthy" if healthy else "rolled_back",
                        "platform": "debian-12-amd64",
                        "failure": not healthy,
                        "op_id": f"pg-{r}-{k}",
                        "before_versions": {"openssl": f"1.{month}", "libc6": f"1.{month}"},
                        "after_versions": {
                            "openssl": f"1.{month + 1}",
                            "libc6": f"1.{month + 1}",
                        },
                        "exit_code": 0,
                        "started_at": finished - dt.timedelta(minutes=10),
                        "finished_at": finished,
                        "updated_at": finished,
                    }
                )
        _insert(conn, Rollout, rollout_rows)
        _insert(conn, Ring, ring_rows)
        _insert(conn, Gate, gate_rows)
        _insert(conn, Approval, vote_rows)
        _insert(conn, HostRun, run_rows)
    timings["rollouts, gates, host runs"] = time.perf_counter() - started

    started = time.perf_counter()
    prev = audit.GENESIS_HASH
    with engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for seq in range(1, events + 1):
            at = YEAR_START + dt.timedelta(seconds=span * seq / (events + 1))
            kind = KINDS[seq % len(KINDS)]
            rollout_id = 1 + seq * rollouts // (events + 1)
            body = audit.canonical_json(
                {
                    "actor": "patchgate",
                    "at": audit.format_time(at),
                    "data": {"host": hosts[seq % HOSTS], "exit_code": 0, "duration_ms": seq % 997},
                    "kind": kind,
                    "rollout_id": rollout_id,
                    "seq": seq,
                }
            )
            digest = audit.chain_hash(prev, body)
            batch.append(
                {
                    "id": seq,
                    "at": at,
                    "kind": kind,
                    "rollout_id": rollout_id,
                    "actor": "patchgate",
                    "body": body,
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
            if len(batch) == CHUNK:
                conn.execute(sa.insert(Event), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(Event), batch)
        conn.execute(
            sa.insert(AuditHead),
            [{"id": 1, "last_event_id": events, "last_hash": prev, "count": events}],
        )
        if urls.dialect == "postgresql":
            for table in ("rollouts", "rings", "gates", "events"):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    timings["events"] = time.perf_counter() - started
    with engine.connect() as conn:
        if urls.dialect == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("VACUUM ANALYZE"))
        else:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return timings


# --- child processes: one build (or the baseline) each, with its own peak RSS --------------


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it is not carried over from the
    parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _child(url: str, what: str, since: str, until: str, out: str) -> dict[str, Any]:
    from integrations.packages.versions import compare
    from workflows.reports import Period, ReportRequest, build_bundle

    period = Period(dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until))
    db = create_database(url)
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        if what == "baseline":
            rows = 0
            async with db.read_sessions() as session:
                for query in (
                    sa.select(Event.id, Event.at, Event.body, Event.prev_hash, Event.hash).where(
                        Event.at >= period.since, Event.at < period.until
                    ),
                    sa.select(HostRun.host_name, HostRun.before_versions, HostRun.after_versions)
                    .join(Rollout, Rollout.id == HostRun.rollout_id)
                    .where(Rollout.created_at >= period.since, Rollout.created_at < period.until),
                ):
                    result = await session.stream(query.execution_options(yield_per=2000))
                    async for partition in result.partitions():
                        rows += len(partition)
            extra: dict[str, Any] = {"rows": rows}
        else:
            bundle = await build_bundle(
                db,
                ReportRequest(period, compare=lambda m, a, b: compare(m or "apt", a, b)),
                Path(out),
            )
            extra = {
                "bytes": bundle.path.stat().st_size,
                "events": bundle.manifest["audit"]["slice"]["count"],
                "host_runs": bundle.manifest["files"]["host_runs.csv"]["rows"],
                "coverage": bundle.manifest["files"]["coverage.csv"]["rows"],
                "critical": bundle.figures["time_to_patch"][0],
            }
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await db.dispose()
    peak_mb = _peak_rss_mb()
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak_mb, **extra}


def child(
    url: str, what: str, period: tuple[dt.datetime, dt.datetime], out: Path
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            what,
            url,
            period[0].isoformat(),
            period[1].isoformat(),
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"child {what} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def prepare_postgres(url: str) -> None:
    parsed = sa.engine.make_url(url)
    admin = sa.create_engine(
        parsed.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, what, url, since, until, out = sys.argv
        print(json.dumps(asyncio.run(_child(url, what, since, until, out)), default=str))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--host-runs", type=int, default=100_000)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/patchgate_bench")
    parser.add_argument("--no-year", action="store_true", help="skip the full-year build")
    parser.add_argument(
        "--reuse-pg", action="store_true", help="keep the PostgreSQL data of an earlier run"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pgbench-report-") as tmp:
        for backend in args.backends.split(","):
            reuse = backend == "postgresql" and args.reuse_pg
            if backend == "postgresql":
                if not reuse:
                    prepare_postgres(args.pg_url)
                url = args.pg_url
            else:
                url = f"sqlite:///{tmp}/bench.db"
            print(f"== {backend}: {args.events:,} events, {args.host_runs:,} host runs")
            timings = {} if reuse else generate(url, events=args.events, host_runs=args.host_runs)
            for step, seconds in timings.items():
                print(f"   {step:<34} {seconds:7.1f} s")
            base = child(url, "baseline", QUARTER, Path(tmp))
            quarter = child(url, "bundle", QUARTER, Path(tmp) / backend / "q")
            again = child(url, "bundle", QUARTER, Path(tmp) / backend / "q2")
            runs: dict[str, Any] = {"baseline": base, "quarter": quarter, "quarter_again": again}
            if not args.no_year:
                runs["year"] = child(
                    url, "bundle", (YEAR_START, YEAR_END), Path(tmp) / backend / "y"
                )
            results[backend] = runs
            print(
                f"   baseline (stream the quarter's {base['rows']:,} event and host-run rows): "
                f"{base['seconds']:.2f} s (CPU {base['cpu_seconds']:.2f} s), "
                f"peak RSS {base['peak_rss_mb']:.0f} MB"
            )
            for name in ("quarter", "quarter_again", "year"):
                if name not in runs:
                    continue
                r = runs[name]
                print(
                    f"   bundle {name:<14} {r['seconds']:6.2f} s  "
                    f"({r['seconds'] / base['seconds']:.1f}x baseline; "
                    f"CPU {r['cpu_seconds']:.1f} s)  peak RSS {r['peak_rss_mb']:.0f} MB  "
                    f"{r['events']:,} events  "
                    f"{r['host_runs']:,} host runs  {r['bytes'] / 1e6:.1f} MB zip"
                )
            print(f"   critical fixes (quarter): {quarter['critical']}")
            if backend == "postgresql":
                verdict = "met" if min(quarter["seconds"], again["seconds"]) < 10 else "MISSED"
                print(f"   target < 10 s on PostgreSQL for a quarter: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
