"""A real ``patchgate serve`` during a large rollout (issue 24, item 4): does /healthz
answer 200, how fast are Slack's acks, how long does any writer wait for the database,
and how much memory does serve take?

    PYTHONPATH=$PWD python bench/serve_scale.py --hosts 10000 --database sqlite
    PYTHONPATH=$PWD python bench/serve_scale.py --hosts 10000 --database postgresql
    PYTHONPATH=$PWD python bench/serve_scale.py --hosts 30000 --limit 900

Starts ``serve`` (HTTP Slack mode against the Slack Web API emulator of tests/fakes, the
recording executor with its state file: hosts that take no time) with an inventory of
N hosts and a four-ring plan without gates (1 %, 9 %, 30 %, 60 %, batches of 10 % of a
ring), starts the rollout with a signed ``/patch run``, then until the rollout settles
(or ``--limit`` seconds): ``GET /healthz`` every 0.25 s and a signed ``/patch status``
slash command every 0.5 s, each timed to its answer. Prints how many probes got 200,
their p50/p95/p99/max, serve's CPU and peak RSS (VmHWM), and the longest wait of any
of serve's writers for the database (``patchgate_db_write_wait_max_seconds``).

A 40-second rollout gives about 80 acks (one per 0.5 s), and the p99 of fewer than 100
samples is the slowest of them (nearest rank). ``--runs N`` measures N rollouts, each
on a fresh serve and database, and prints their acks pooled as well: with 5 such runs,
about 400 acks, whose p99 is the fourth or fifth slowest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.slack_ack import (  # noqa: E402
    CHANNEL,
    command_body,
    cpu_seconds,
    database_url,
    drop_database,
    percentile,
    post,
)
from tests.e2e.harness import OPERATOR, ServeProcess, base_env, metric, patchgate  # noqa: E402
from tests.fakes.slack_api import slack_emulator  # noqa: E402
from tests.slack.conftest import SECRET, TOKEN  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432/x"
RINGS = (("canary", 0.01), ("early", 0.09), ("main", 0.30), ("rest", 0.60))


def write_fleet(directory: Path, n: int) -> tuple[Path, Path]:
    """An inventory of ``n`` hosts in four groups and a plan with a ring per group."""
    lines = ["all:", "  children:"]
    start = 0
    for i, (name, share) in enumerate(RINGS):
        count = n - start if i == len(RINGS) - 1 else max(1, round(n * share))
        lines += [f"    {name}:", "      hosts:"]
        lines += [f"        {name}-{j:06d}: {{}}" for j in range(start, start + count)]
        start += count
    inventory = directory / "hosts.yml"
    inventory.write_text("\n".join(lines) + "\n")
    plans = directory / "plans"
    plans.mkdir()
    rings = "".join(
        f'  - name: {name}\n    hosts: "group:{name}"\n    batch: "10%"\n    failure_budget: 5\n'
        for name, _ in RINGS
    )
    (plans / "bench.yml").write_text(
        "name: bench\n"
        'packages: {include: ["*"]}\n'
        "reboot: if-required\n"
        "health_checks: [{name: http, type: http, url: 'http://{address}/h'}]\n"
        f"slack: {{channel: {CHANNEL}}}\n"
        f"rings:\n{rings}"
    )
    return inventory, plans


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def summary(name: str, times: list[float], statuses: list[int]) -> str:
    ok = sum(1 for s in statuses if s == 200)
    if not times:
        return f"  {name}: no probes"
    return (
        f"  {name}: {ok} of {len(statuses)} answered 200; ms p50 {percentile(times, 50):.0f}, "
        f"p95 {percentile(times, 95):.0f}, p99 {percentile(times, 99):.0f}, "
        f"max {max(times):.0f}"
    )


async def probe(
    session: aiohttp.ClientSession,
    url: str,
    every: float,
    stop: asyncio.Event,
    out: tuple[list[float], list[int]],
    body: str | None = None,
    starts: list[float] | None = None,  # when each probe was sent
) -> None:
    n = 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            if body is None:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as r:
                    await r.read()
                    status = r.status
            else:
                n += 1
                status, _ = await post(session, url, command_body("status", OPERATOR, n))
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        out[0].append((time.perf_counter() - started) * 1000)
        out[1].append(status)
        if starts is not None:
            starts.append(started)
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))


async def run(args: argparse.Namespace) -> tuple[list[float], list[int]]:
    """One rollout measured; the acks' times and statuses (for ``--runs``' pooled line)."""
    with tempfile.TemporaryDirectory(prefix="serve-scale-") as tmp:
        workdir = Path(tmp)
        pg = PG if args.database == "postgresql" else None
        url = database_url(pg, workdir, "serve_scale")
        inventory, plans = write_fleet(workdir, args.hosts)
        async with slack_emulator(token=TOKEN) as emulator:
            emulator.channels.add(CHANNEL)
            env = base_env(
                url,
                PATCHGATE_SLACK_BOT_TOKEN=TOKEN,
                PATCHGATE_SLACK_SIGNING_SECRET=SECRET,
                PATCHGATE_SLACK_API_URL=emulator.url,
                PATCHGATE_LOG_LEVEL="WARNING",
                PATCHGATE_PLANS_DIR=str(plans),
                PATCHGATE_INVENTORY=str(inventory),
                PATCHGATE_RECORDING_STATE_FILE=str(workdir / "fleet.json"),
                PATCHGATE_METRICS_INTERVAL="5",
            )
            stalls: Path | None = args.stalls
            if stalls is not None:  # bench/stalls/sitecustomize.py, in serve only
                env["PATCHGATE_BENCH_STALLS"] = str(stalls)
                env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench" / "stalls"), str(REPO)])
            result = await asyncio.to_thread(patchgate, env, "db", "upgrade", cwd=workdir)
            if result.returncode != 0:
                raise SystemExit(f"db upgrade failed\n{result.stderr}")
            with ServeProcess(env, cwd=workdir) as serve:
                await asyncio.to_thread(serve.wait_ready)
                await asyncio.to_thread(serve.wait_leader, timeout=60)
                base = f"http://127.0.0.1:{serve.port}"
                rss_idle = peak_rss_mb(serve.pid)
                cpu0, wall0 = cpu_seconds(serve.pid), time.monotonic()
                db = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
                async with aiohttp.ClientSession() as session:
                    status, _ = await post(
                        session, f"{base}/slack/events", command_body("run bench", OPERATOR, 0)
                    )
                    if status != 200:
                        raise SystemExit(f"/patch run bench answered {status}\n{serve.log()}")
                    stop = asyncio.Event()
                    health: tuple[list[float], list[int]] = ([], [])
                    acks: tuple[list[float], list[int]] = ([], [])
                    sent: list[float] = []
                    phases: list[tuple[float, str]] = []
                    t0 = time.perf_counter()
                    tasks = [
                        asyncio.create_task(probe(session, f"{base}/healthz", 0.25, stop, health)),
                        asyncio.create_task(
                            probe(session, f"{base}/slack/events", 0.5, stop, acks, "", sent)
                        ),
                    ]
                    state = "?"
                    while time.monotonic() - wall0 < args.limit:
                        await asyncio.sleep(5)
                        state = await asyncio.to_thread(rollout_state, db)
                        if not phases or phases[-1][1] != state:
                            phases.append((time.perf_counter() - t0, state))
                        if state in ("succeeded", "succeeded_with_failures", "failed"):
                            break
                        if serve.poll() is not None:
                            raise SystemExit(f"serve exited\n{serve.log()[-3000:]}")
                    wall = time.monotonic() - wall0
                    cpu = cpu_seconds(serve.pid) - cpu0
                    stop.set()
                    await asyncio.gather(*tasks)
                    runs = await asyncio.to_thread(host_states, db)
                db.dispose()
                try:
                    text = await asyncio.to_thread(serve.metrics)
                except AssertionError:  # no fresh snapshot within the harness's 20 s
                    text = ""
                wait = metric(text, "patchgate_db_write_wait_max_seconds") if text else None
                over = metric(text, "patchgate_db_write_waits_over_1s") if text else None
                rss = peak_rss_mb(serve.pid)
                done = sum(n for s, n in runs.items() if s not in ("pending",))
                print(
                    f"\nserve, {args.database}, {args.hosts:,} hosts (load "
                    f"{os.getloadavg()[0]:.1f}): rollout {state} after {wall:.0f} s; "
                    f"host runs {runs}\n"
                    f"  serve CPU {cpu:.0f} s ({cpu / max(done, 1) * 1000:.1f} ms per host run "
                    f"done), peak RSS {rss:.0f} MB (idle before the rollout {rss_idle:.0f} MB)"
                )
                print(summary("/healthz", *health))
                print(summary("slack /patch status ack", *acks))
                slowest = sorted(zip(acks[0], sent, strict=True), reverse=True)[:8]
                print(
                    "  slowest acks (ms at s since the run): "
                    + ", ".join(f"{ms:.0f} at {at - t0:.0f}" for ms, at in slowest)
                )
                print(
                    "  rollout states first seen (5 s polls): "
                    + ", ".join(f"{state} at {at:.0f}" for at, state in phases)
                )
                print(
                    f"  longest writer wait for the database {wait or 0:.2f} s; "
                    f"writers waiting over 1 s: {int(over or 0)}"
                    if text
                    else "  writer waits: no metrics snapshot came within 20 s"
                )
                if stalls is not None:
                    print(stall_summary(stalls, started=time.time() - (time.perf_counter() - t0)))
    return acks


def stall_summary(path: Path, *, started: float) -> str:
    """The event loop's stalls in serve (``--stalls``): totals by task, the longest ones."""
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    loop = [x for x in lines if "task" in x and x["at"] >= started]
    gcs = [x for x in lines if "gc" in x and x["at"] >= started]
    by_task: dict[str, list[int]] = {}
    for x in loop:
        by_task.setdefault(x["task"].split(" > ")[0], []).append(x["ms"])
    out = [
        f"  event-loop stalls over 30 ms during the run: {len(loop)}, "
        f"{sum(x['ms'] for x in loop) / 1000:.1f} s in all (details: {path})"
    ]
    for task, ms in sorted(by_task.items(), key=lambda kv: -sum(kv[1]))[:6]:
        out.append(f"    {sum(ms) / 1000:5.1f} s in {len(ms):3d}, longest {max(ms):4d} ms: {task}")
    for x in sorted(loop, key=lambda x: -x["ms"])[:5]:
        where = x["stacks"][0][1][:3] if x["stacks"] else []
        out.append(f"    {x['ms']:4d} ms at {x['at'] - started:.0f} s: {' < '.join(where)}")
    if gcs:
        by_gen = {g: [x["ms"] for x in gcs if x["gc"] == g] for g in sorted({x["gc"] for x in gcs})}
        out.append(
            "  garbage collections over 10 ms: "
            + "; ".join(
                f"generation {g}: {len(ms)}, longest {max(ms)} ms" for g, ms in by_gen.items()
            )
        )
    return "\n".join(out)


def rollout_state(db: sa.Engine) -> str:
    with contextlib.suppress(Exception), db.connect() as conn:
        return str(conn.execute(sa.text("SELECT state FROM rollouts ORDER BY id DESC")).scalar())
    return "?"


def host_states(db: sa.Engine) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT state, count(*) FROM host_runs GROUP BY state"))
        return {str(s): int(n) for s, n in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds at most")
    parser.add_argument(
        "--stalls", metavar="FILE", help="record serve's event-loop stalls and GC pauses there"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="rollouts to measure, each on a fresh serve and database; prints the acks of "
        "all of them pooled too (a 40 s run gives about 80 acks, and the p99 of fewer than "
        "100 samples is their slowest one)",
    )
    args = parser.parse_args()
    if args.stalls:
        args.stalls = Path(args.stalls).resolve()
        args.stalls.unlink(missing_ok=True)
    pooled: tuple[list[float], list[int]] = ([], [])
    for n in range(args.runs):
        if args.runs > 1:
            print(f"\n== run {n + 1} of {args.runs}")
        try:
            times, statuses = asyncio.run(run(args))
        finally:
            if args.database == "postgresql":
                drop_database(PG, "serve_scale")
        pooled[0].extend(times)
        pooled[1].extend(statuses)
    if args.runs > 1:
        print(f"\nall {args.runs} runs pooled:")
        print(summary("slack /patch status ack", *pooled))
        print(f"  slowest acks (ms): {', '.join(f'{ms:.0f}' for ms in sorted(pooled[0])[-8:])}")


if __name__ == "__main__":
    main()
