"""Ack latency of the Slack endpoint: time from a signed request to Slack's HTTP answer.

    /tmp/pgvenv/bin/python bench/slack_ack.py                          # SQLite
    /tmp/pgvenv/bin/python bench/slack_ack.py --baseline-rev 691df95   # and an older commit
    /tmp/pgvenv/bin/python bench/slack_ack.py --database-url postgresql://postgres@127.0.0.1/x
    /tmp/pgvenv/bin/python bench/slack_ack.py --profile /tmp/serve.prof --levels 50

Starts ``patchgate serve`` in HTTP mode (recording executor, the example plans and
inventory, a fresh database) with the Slack Web API emulator of ``tests/fakes`` as its
Slack API URL, starts a rollout with a signed ``/patch run weekly`` and waits for the
canary gate's readiness message. Then, at each concurrency level (1, 10, 50), it fires
rounds of that many requests at once: half Approve clicks on that message by people
who may not approve (each a full gate decision: Directory lookup, refusal audited in
the database, ephemeral answer after the ack), half slash commands (``status``,
``plans``, ``help``, ``hosts``). It prints p50/p95/p99/max of the time to the HTTP
response and the server's CPU per request (from /proc, the idle engine's CPU
subtracted): ``cpu/req`` during the rounds, ``cpu+after`` also counting the work done
after the acks once it has settled (decisions of journaled clicks, ephemeral answers).

In the same run, interleaved level by level so every target sees the same machine
load, it measures:

- ``floor``: a minimal aiohttp handler (``bench/slack_ack_floor.py``: signature check,
  fixed answer, no Bolt, no database): what the machine and the client cost alone;
- ``baseline``: with ``--baseline-rev REV``, ``patchgate serve`` from that commit
  (extracted with ``git archive``), e.g. the code before an optimisation.

With ``--scrapers N`` every PatchGate target measures each level twice, without and
then with N scrapers (in a process of their own) fetching ``/metrics`` back to back
during the rounds (rows ``NAME+Ns``; ``scrapes/s`` is what they got through), on the
Slack port, or on ``PATCHGATE_METRICS_PORT`` with ``--metrics-port`` (this checkout
only).

Slack's limit is 3 s; the target is p99 < 100 ms at 50 concurrent. Exit code 1 if the
target is missed or any PatchGate request was not answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from tests.e2e.harness import OPERATOR, ServeProcess, base_env, free_port, patchgate  # noqa: E402
from tests.fakes.slack_api import SlackEmulator, slack_emulator  # noqa: E402
from tests.slack.conftest import SECRET, TOKEN, signed_request  # noqa: E402

CHANNEL = "C0123456789"  # examples/plans/weekly.yml
TARGET_P99_MS = 100.0
SUBCOMMANDS = ("status", "plans", "help", "hosts group:prod")
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def command_body(text: str, user: str, n: int) -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0TEAM",
            "channel_id": CHANNEL,
            "user_id": user,
            "command": "/patch",
            "text": text,
            "response_url": "https://hooks.slack.invalid/commands/1",
            "trigger_id": f"bench.{n}.{time.time_ns()}",
        }
    )


def click_body(value: str, user: str, n: int) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM"},
        "user": {"id": user},
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "channel_id": CHANNEL},
        "trigger_id": f"bench.{n}.{time.time_ns()}",
        "actions": [
            {
                "action_id": "gate_approve",
                "block_id": "gate_actions",
                "value": value,
                "type": "button",
                "action_ts": str(time.time_ns()),
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def post(session: aiohttp.ClientSession, url: str, body: str) -> tuple[int, float]:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed_request(body)}
    start = time.perf_counter()
    async with session.post(url, data=body.encode(), headers=headers) as response:
        await response.read()
        return response.status, (time.perf_counter() - start) * 1000


SETTLE = 3.0  # seconds after a level's rounds before its total CPU is read

SCRAPERS = """
import asyncio, signal, sys, aiohttp
async def main(url, n):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counts = [0, 0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def one():
            while not stop.is_set():
                try:
                    async with s.get(url) as r:
                        await r.read()
                        counts[r.status != 200] += 1
                except aiohttp.ClientError:
                    counts[1] += 1
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(*counts)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def settle(
    pid: int, *, at_least: float = 2.0, idle: float = 0.1, most: float = 120.0
) -> None:
    """Wait at least ``at_least`` seconds, then until the process ``pid`` used less than
    ``idle`` of a core over half a second (at most ``most`` seconds in all)."""
    await asyncio.sleep(at_least)
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if (cpu_seconds(pid) - before) / 0.5 < idle:
            return


@dataclass
class Level:
    times: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    cpu_ms: float | None = None  # per request, during the rounds
    total_cpu_ms: float | None = None  # per request, with the work after the acks settled
    scrapes: int = 0  # /metrics answers the scrapers got during the rounds
    scrape_errors: int = 0  # ... that were not 200
    seconds: float = 0.0  # the rounds' wall time
    scrape_seconds: float = 0.0  # how long the scrapers ran


@dataclass
class Target:
    """One server under test: PatchGate (this checkout or an older one) or the floor."""

    name: str
    pid: int
    endpoint: str
    value: str  # the Approve button's value ("" for the floor)
    only: str | None = None  # "click", or one subcommand's text: no mix
    levels: dict[int, Level] = field(default_factory=dict)
    scraped: dict[int, Level] = field(default_factory=dict)  # the same, with scrapers
    scrape_url: str | None = None  # /metrics of this server (None: the floor)
    seq: int = 0
    profiled: bool = False  # serve runs bench/slack_ack_serve.py: SIGUSR1/2 around rounds

    def bodies(self, size: int) -> list[str]:
        out = []
        for i in range(size):
            self.seq += 1
            n = self.seq
            if self.only == "click" or (self.only is None and i % 2 == 0):
                out.append(click_body(self.value, f"U0BENCH{n:05d}", n))
            else:
                text = self.only or SUBCOMMANDS[n // 2 % len(SUBCOMMANDS)]
                out.append(command_body(text, f"U0BENCH{n:05d}", n))
        return out

    async def round(self, session: aiohttp.ClientSession, size: int) -> list[tuple[int, float]]:
        bodies = self.bodies(size)
        return list(await asyncio.gather(*(post(session, self.endpoint, b) for b in bodies)))

    async def measure(
        self, session: aiohttp.ClientSession, size: int, requests: int, scrapers: int = 0
    ) -> None:
        await self.round(session, size)  # warm-up at this level
        # The work after the acks (decisions, ephemeral answers) of the warm-up and of
        # the level before runs on: a level measured while serve still worked off
        # 1,000 requests' backlog (cpu+after 4 ms each, 1.5 ms of it during the rounds)
        # paid for it in latency (idle rate 0.9 of a core). Wait until serve is idle.
        await settle(self.pid)
        idle_from, idle_cpu = time.monotonic(), cpu_seconds(self.pid)
        await asyncio.sleep(1.0)
        idle_rate = (cpu_seconds(self.pid) - idle_cpu) / (time.monotonic() - idle_from)
        level = (self.scraped if scrapers else self.levels).setdefault(size, Level())
        if self.profiled:
            os.kill(self.pid, signal.SIGUSR1)
        scrapers_from = time.monotonic()
        scraping = await self.start_scrapers(scrapers) if scrapers else None
        start, cpu = time.monotonic(), cpu_seconds(self.pid)
        # The client's own full garbage collections (this process holds the Slack
        # emulator and every answer) paused it for ~80 ms now and then, counted as the
        # server's latency: the floor's p99 at 50 was 85 ms for p95 9 ms. None during
        # the rounds; one after.
        gc.disable()
        try:
            for _ in range(max(1, requests // size)):
                for status, ms in await self.round(session, size):
                    level.statuses.append(status)
                    level.times.append(ms)
            elapsed = level.seconds = time.monotonic() - start
        finally:
            gc.enable()
        gc.collect()
        busy = cpu_seconds(self.pid) - cpu - idle_rate * elapsed
        if scraping is not None:
            scraping.send_signal(signal.SIGTERM)
            level.scrape_seconds = time.monotonic() - scrapers_from
            out, _ = await scraping.communicate()
            ok, bad = (int(n) for n in out.split())
            level.scrapes, level.scrape_errors = ok + bad, bad
        if self.profiled:
            os.kill(self.pid, signal.SIGUSR2)
            await asyncio.sleep(1.0)  # the profile is written
        level.cpu_ms = max(0.0, busy) * 1000 / len(level.times)
        # Work done after the acks (decisions of journaled clicks, ephemeral answers)
        # may run after the last round: count it too, once it has settled.
        await settle(self.pid, at_least=SETTLE)
        total = cpu_seconds(self.pid) - cpu - idle_rate * (time.monotonic() - start)
        level.total_cpu_ms = max(0.0, total) * 1000 / len(level.times)

    async def start_scrapers(self, n: int) -> asyncio.subprocess.Process:
        """``n`` scrapers in a process of their own (as Prometheus would be), each asking
        for /metrics again as soon as it is answered, until SIGTERM."""
        assert self.scrape_url is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SCRAPERS, self.scrape_url, str(n), stdout=subprocess.PIPE
        )
        await asyncio.sleep(1.0)  # started and scraping
        return proc


# --- starting the servers -------------------------------------------------------------------


class Serve(ServeProcess):
    """``patchgate serve``, optionally under cProfile (bench/slack_ack_serve.py)."""

    def __init__(self, env: dict[str, str], *, cwd: Path, name: str, profile: str | None):
        super().__init__(env, cwd=cwd, name=name)
        self.profile = profile

    def __enter__(self) -> Serve:
        if self.profile is None:
            super().__enter__()
            return self
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "slack_ack_serve.py")],
                env={**self.env, "PATCHGATE_BENCH_PROFILE": self.profile},
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        return self


async def readiness_value(emulator: SlackEmulator, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for message in emulator.posted(CHANNEL):
            for block in message["blocks"]:
                if block["type"] == "actions":
                    return str(block["elements"][0]["value"])
        await asyncio.sleep(0.2)
    raise SystemExit(f"no readiness message within {within:g}s")


def database_url(base: str | None, workdir: Path, name: str) -> str:
    if base is None:
        return f"sqlite:///{workdir / 'bench.db'}"
    # PostgreSQL: a fresh database per target, created through the maintenance database.
    import psycopg

    parsed = urllib.parse.urlsplit(base)
    dbname = f"slack_ack_{name}_{os.getpid()}"
    admin = parsed._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return parsed._replace(path=f"/{dbname}").geturl()


def drop_database(base: str, name: str) -> None:
    """Drop what :func:`database_url` created for ``name`` in this process (a benchmark
    that ran 10,000 hosts leaves a database of hundreds of MB otherwise)."""
    import psycopg

    parsed = urllib.parse.urlsplit(base)
    admin = parsed._replace(scheme="postgresql", path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "slack_ack_{name}_{os.getpid()}" WITH (FORCE)')


async def start_patchgate(
    stack: Any, name: str, code: Path, args: argparse.Namespace, session: aiohttp.ClientSession
) -> Target:
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"slack-ack-{name}-")))
    url = database_url(args.database_url, workdir, name)
    emulator = await stack.enter_async_context(slack_emulator(token=TOKEN))
    emulator.channels.add(CHANNEL)
    env = base_env(
        url,
        PATCHGATE_SLACK_BOT_TOKEN=TOKEN,
        PATCHGATE_SLACK_SIGNING_SECRET=SECRET,
        PATCHGATE_SLACK_API_URL=emulator.url,
        PATCHGATE_LOG_LEVEL="WARNING",
        PATCHGATE_ENGINE_TICK=str(args.engine_tick),
        PATCHGATE_PLANS_DIR=str(code / "examples" / "plans"),  # that commit's own examples
        PATCHGATE_INVENTORY=str(code / "examples" / "inventory"),
        PYTHONPATH=str(code),
        PATCHGATE_METRICS_INTERVAL="15",  # the default (base_env sets 1 for the tests)
    )
    metrics_port = free_port() if args.metrics_port and name == "patchgate" else None
    if metrics_port is not None:
        env["PATCHGATE_METRICS_PORT"] = str(metrics_port)
    result = await asyncio.to_thread(patchgate, env, "db", "upgrade", cwd=workdir)
    if result.returncode != 0:
        raise SystemExit(f"{name}: db upgrade failed\n{result.stderr}")
    profile = args.profile if name == "patchgate" else None
    serve = stack.enter_context(Serve(env, cwd=workdir, name=name, profile=profile))
    slack_port = serve.port
    if metrics_port is not None:
        serve.port = metrics_port  # wait_ready probes /healthz, which is on this port
    await asyncio.to_thread(serve.wait_ready)
    scrape_url = f"http://127.0.0.1:{serve.port}/metrics"
    await asyncio.to_thread(serve.wait_leader, timeout=30)
    serve.port = slack_port
    endpoint = f"http://127.0.0.1:{serve.port}/slack/events"
    status, _ = await post(session, endpoint, command_body("run weekly", OPERATOR, 0))
    if status != 200:
        raise SystemExit(f"{name}: /patch run weekly answered {status}\n{serve.log()}")
    value = await readiness_value(emulator, within=60)
    stack.callback(lambda: _report_errors(name, serve))
    target = Target(name, serve.pid, endpoint, value, profiled=profile is not None)
    target.scrape_url = scrape_url
    return target


def _report_errors(name: str, serve: ServeProcess) -> None:
    errors = [line for line in serve.log().splitlines() if "ERROR" in line]
    if errors:
        print(f"{name}: {len(errors)} ERROR lines in its log, last:", file=sys.stderr)
        print("\n".join(errors[-5:]), file=sys.stderr)


async def start_floor(stack: Any) -> Target:
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 (starting it does not block)
        [sys.executable, str(REPO / "bench" / "slack_ack_floor.py"), str(port), SECRET]
    )
    stack.callback(proc.wait, 10)
    stack.callback(proc.kill)
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as probe:
        while True:
            try:
                async with probe.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the floor server did not start")
            await asyncio.sleep(0.1)
    return Target("floor", proc.pid, f"http://127.0.0.1:{port}/slack/events", "{}")


def extract(rev: str, into: Path) -> Path:
    """The tree of commit ``rev``, unpacked with git archive (no worktree registered)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


# --- the run ---------------------------------------------------------------------------------


def print_table(targets: list[Target], levels: list[int], scrapers: int = 0) -> None:
    print(
        f"{'target':<13} {'conc':>4} {'n':>4} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} "
        f"{'cpu/req':>8} {'cpu+after':>9} {'non-200':>7} {'scrapes/s':>9}"
    )
    for size in levels:
        rows = [(t.name, t.levels[size]) for t in targets]
        rows += [(f"{t.name}+{scrapers}s", t.scraped[size]) for t in targets if size in t.scraped]
        for name, lv in rows:
            bad = sum(1 for s in lv.statuses if s != 200)
            if bad:
                codes = sorted({s for s in lv.statuses if s != 200})
                print(f"  ({name} at {size}: non-200 answers {codes})")
            if lv.scrape_errors:
                print(f"  ({name} at {size}: {lv.scrape_errors} scrapes not answered 200)")
            cpu = f"{lv.cpu_ms:.1f}" if lv.cpu_ms is not None else "-"
            total = f"{lv.total_cpu_ms:.1f}" if lv.total_cpu_ms is not None else "-"
            rate = f"{lv.scrapes / lv.scrape_seconds:.0f}" if lv.scrape_seconds else "-"
            print(
                f"{name:<13} {size:>4} {len(lv.times):>4} "
                f"{percentile(lv.times, 50):>8.1f} {percentile(lv.times, 95):>8.1f} "
                f"{percentile(lv.times, 99):>8.1f} {max(lv.times):>8.1f} {cpu:>8} "
                f"{total:>9} {bad:>7} {rate:>9}"
            )
    names = [t.name for t in targets]
    if "floor" in names:
        print("ratios to the floor (p99, cpu/request):")
        floor = targets[names.index("floor")]
        for size in levels:
            for t in targets:
                if t is floor:
                    continue
                p99 = percentile(t.levels[size].times, 99) / percentile(
                    floor.levels[size].times, 99
                )
                cpu_t, cpu_f = t.levels[size].cpu_ms, floor.levels[size].cpu_ms
                cpu = f"{cpu_t / cpu_f:.1f}x" if cpu_t and cpu_f else "-"
                print(f"  {t.name:<10} at {size:>2}: p99 {p99:.1f}x  cpu {cpu}")


async def main() -> int:
    from contextlib import AsyncExitStack

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL server URL; default: SQLite files")
    parser.add_argument("--levels", default="1,10,50", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=200, help="measured per level")
    parser.add_argument(
        "--engine-tick",
        type=float,
        default=2.0,
        help="PATCHGATE_ENGINE_TICK of the servers (default 2, the setting's default; the "
        "tests use 0.2)",
    )
    parser.add_argument("--rev", help="measure serve from this commit, not the working tree")
    parser.add_argument("--code", help="measure serve from this source tree (experiments)")
    parser.add_argument("--baseline-rev", help="also measure serve from this commit")
    parser.add_argument("--no-floor", action="store_true", help="skip the minimal handler")
    parser.add_argument("--only", help='"click" or one subcommand (e.g. "plans"): no mix')
    parser.add_argument(
        "--profile", help="profile this checkout's serve during the measured rounds, to FILE"
    )
    parser.add_argument(
        "--scrapers", type=int, default=0, help="also measure with N /metrics scrapers"
    )
    parser.add_argument(
        "--metrics-port",
        action="store_true",
        help="this checkout's serve with PATCHGATE_METRICS_PORT (the scrapers go there)",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    load = os.getloadavg()
    print(
        f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs"
    )
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        targets = []
        if not args.no_floor:
            targets.append(await start_floor(stack))
        if args.baseline_rev:
            tree = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="slack-ack-rev-")))
            code = extract(args.baseline_rev, tree)
            targets.append(await start_patchgate(stack, "baseline", code, args, session))
        code = Path(args.code) if args.code else REPO
        if args.rev:
            tree = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="slack-ack-rev-")))
            code = extract(args.rev, tree)
        targets.append(await start_patchgate(stack, "patchgate", code, args, session))
        for target in targets:
            target.only = args.only
        for size in levels:
            requests = args.requests if size > 1 else min(args.requests, 100)
            for target in targets:
                await target.measure(session, size, requests)
            for target in targets:
                if args.scrapers and target.scrape_url is not None:
                    await target.measure(session, size, requests, args.scrapers)
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.baseline_rev:
        print(f"baseline = {args.baseline_rev}")
    print(f"patchgate = {args.rev or 'the working tree'}")
    print_table(targets, levels, args.scrapers)
    ours = targets[-1]
    top = max(levels)
    ok = True
    runs = [("", ours.levels)] + (
        [(f" with {args.scrapers} scrapers", ours.scraped)] if args.scrapers else []
    )
    for label, measured in runs:
        bad = [s for lv in measured.values() for s in lv.statuses if s != 200]
        p99 = percentile(measured[top].times, 99)
        met = p99 < TARGET_P99_MS and not bad
        ok = ok and met
        print(
            f"target p99 < {TARGET_P99_MS:g} ms at {top} concurrent{label}: "
            f"{'met' if met else 'MISSED'} ({p99:.1f} ms; p50 "
            f"{percentile(measured[top].times, 50):.1f} ms; mean "
            f"{statistics.fmean(measured[top].times):.1f} ms)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
