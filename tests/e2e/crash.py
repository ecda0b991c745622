"""The crash harness: a three-ring rollout run by real ``patchgate serve`` processes that
are SIGKILLed at a named persisted step (PATCHGATE_TEST_KILL_AT=STEP:N) and restarted.

One :class:`CrashRun` is one rollout on a fresh database (a copy of a database migrated
once per backend), with the Slack and Jira emulators in the test's event loop and the
recording executor's fleet in a state file shared with the processes. The test plays
the people through signed Slack requests to the process's ``/slack/events``: the
requester types ``/patch run crash``, the approvers click Approve on each readiness
message. :meth:`CrashRun.check` then asserts the end state (see its docstring).

A run without a kill point but with PATCHGATE_TEST_STEP_LOG records the name of every
persisted step: that list enumerates the kill points.

:func:`run_matrix` runs many kill points of one backend at once (each run has its own
emulators, database copy, directory and ports), with ``serve`` and ``audit verify``
forked from a fork server that imported PatchGate once (tests/e2e: ``fork_server``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import time
import traceback
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from integrations.slack.messages import GateAction, GateRef
from integrations.testing.executor import RecordingExecutor
from integrations.testing.simjournal import load_state
from tests.dbutil import ADMIN_URL, _admin_engine, skip_or_fail_without_postgres
from tests.e2e.harness import (
    ForkedServe,
    ServeProcess,
    base_env,
    forked_patchgate,
    migrate,
    patchgate,
    wait_exit,
)
from tests.fakes.jira_api import JiraEmulator
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from tests.slack.conftest import SECRET, TOKEN, signed_request
from workflows.db import Database, create_database, read_only
from workflows.models import Approval, Event, Gate, HostRun, OutboxItem, Rollout
from workflows.states import ROLLOUT_TERMINAL

CHANNEL = "C0PATCHES"
REQUESTER = "U0REQUESTER"
APPROVERS = ("U0APPROVER1", "U0APPROVER2")
RUN_TIMEOUT = 90.0
COMMAND_AGAIN = 5.0  # seconds before `/patch run` is sent again after a non-200 answer
MATRIX_TIMEOUT = 180.0  # a run among others on a busy 2-core machine
# The matrix's engine tick: an idle serve spends 0.14 CPU-s a second ticking every 0.1 s,
# 0.08 every 0.25 s; 0.25 cut a run's CPU by about a tenth (3.9 to 3.5 s on SQLite).
MATRIX_TICK = 0.25

# Three rings, six hosts: dev one at a time; staging behind one approval, where
# staging-02 turns unhealthy and is rolled back (a Jira ticket, and a comment on it);
# prod behind two approvals, both hosts in one batch.
PLAN = f"""\
name: crash
packages: {{include: ["*"]}}
reboot: never
rollback: {{on_patch_failure: true, on_health_failure: true, ring_on_budget_exceeded: true}}
health_checks:
  - {{name: ssh port open, type: tcp, port: 22}}
rings:
  - {{name: dev, hosts: group:dev, batch: 1}}
  - name: staging
    hosts: group:staging
    batch: 1
    failure_budget: 1
    gate: {{type: approval, approvers: {{users: [{APPROVERS[0]}]}}, timeout: 4h}}
  - name: prod
    hosts: group:prod
    batch: 2
    gate:
      type: approval
      approvers: {{users: [{APPROVERS[0]}, {APPROVERS[1]}]}}
      quorum: 2
      timeout: 4h
slack: {{channel: {CHANNEL}}}
jira: {{project: OPS, issue_type: Task}}
"""
INVENTORY = """\
all:
  children:
    dev: {hosts: {dev-01: {}, dev-02: {}}}
    staging: {hosts: {staging-01: {}, staging-02: {}}, vars: {criticality: medium}}
    prod: {hosts: {web-01: {}, web-02: {}}, vars: {criticality: high}}
"""
HOSTS = ("dev-01", "dev-02", "staging-01", "staging-02", "web-01", "web-02")
UNHEALTHY = "staging-02"
EXPECTED_RUNS = {host: "healthy" for host in HOSTS} | {UNHEALTHY: "rolled_back"}


@dataclass
class Scenario:
    """What a run deploys on: the plan and inventory, extra settings (the executor), what
    the host runs must end as, how many Jira tickets it files, and how many times each
    host was patched (asked at the end, from the hosts' own record)."""

    plan: str
    inventory: str
    expected_runs: dict[str, str]
    tickets: int
    env: dict[str, str]
    applied: Callable[[], dict[str, int]]
    # the rollout's end: with a host failed inside the budget, succeeded_with_failures
    final_state: str = "succeeded"


def recording_scenario(tmp: Path) -> Scenario:
    """The recording executor's fleet in a state file shared with the processes."""
    state = tmp / "fleet.json"
    fleet = RecordingExecutor.demo(state_file=state)
    fleet.fail(UNHEALTHY, "health", "unhealthy")

    def applied() -> dict[str, int]:
        hosts = load_state(state).hosts
        return {h: len(hosts[h].applied_ops) if h in hosts else 0 for h in HOSTS}

    return Scenario(
        plan=PLAN,
        inventory=INVENTORY,
        expected_runs=EXPECTED_RUNS,
        tickets=1,
        env={"PATCHGATE_RECORDING_STATE_FILE": str(state)},
        applied=applied,
        final_state="succeeded_with_failures",  # staging-02, inside the budget
    )


# --- databases ---------------------------------------------------------------------------


class Templates:
    """One migrated database per backend; each run gets a copy (migrating takes seconds)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sqlite: Path | None = None
        self._pg: str | None = None

    def _template(self, backend: str) -> str:
        if backend == "sqlite":
            if self._sqlite is None:
                path = self.root / "template.db"
                migrate(f"sqlite:///{path}", self.root)
                self._sqlite = path
            return str(self._sqlite)
        skip_or_fail_without_postgres()
        if self._pg is None:
            name = f"patchgate_crash_tmpl_{uuid.uuid4().hex[:10]}"
            admin = _admin_engine()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            admin.dispose()
            migrate(self._pg_url(name), self.root)
            self._pg = name
        return self._pg

    def prepare(self, backend: str) -> None:
        """Migrate ``backend``'s template now (before runs that copy it concurrently)."""
        self._template(backend)

    @staticmethod
    def _pg_url(name: str) -> str:
        return (
            sa.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        )

    @contextmanager
    def fresh(self, backend: str, where: Path) -> Iterator[str]:
        """The URL of a new database at the latest migration, dropped afterwards."""
        template = self._template(backend)
        if backend == "sqlite":
            path = where / f"crash-{uuid.uuid4().hex[:8]}.db"
            path.write_bytes(Path(template).read_bytes())
            yield f"sqlite:///{path}"
            return
        name = f"patchgate_test_{uuid.uuid4().hex[:12]}"
        admin = _admin_engine()
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            yield self._pg_url(name)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()

    @asynccontextmanager
    async def fresh_async(self, backend: str, where: Path) -> AsyncIterator[str]:
        """:meth:`fresh` without blocking the event loop (call :meth:`prepare` first)."""
        manager = self.fresh(backend, where)
        url = await asyncio.to_thread(manager.__enter__)
        try:
            yield url
        finally:
            await asyncio.to_thread(manager.__exit__, None, None, None)

    def close(self) -> None:
        if self._pg is not None:
            admin = _admin_engine()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self._pg}" WITH (FORCE)')
            admin.dispose()


# --- ports -------------------------------------------------------------------------------

# serve's ports come from below Linux's ephemeral range (32768-60999): ports the kernel
# hands out (free_port(), the emulators', every client connection's) cannot take one
# between choosing it and serve binding it, which many runs at once made likely.
_SERVE_PORTS = range(20000, 32768)
_next_port = random.randrange(len(_SERVE_PORTS))


def serve_port() -> int:
    """A port for a ``serve`` of this session: the next free one of _SERVE_PORTS, from
    a random start (other test sessions on the machine start elsewhere)."""
    global _next_port
    for _ in _SERVE_PORTS:
        port = _SERVE_PORTS[_next_port % len(_SERVE_PORTS)]
        _next_port += 1
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port for serve")


# --- emulators ---------------------------------------------------------------------------


def buttons(message: dict[str, Any]) -> dict[str, str]:
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":
            return {e["action_id"]: e["value"] for e in block["elements"] if "value" in e}
    return {}


# --- one run -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run did, for the checks and for the figures."""

    kills: int = 0
    starts: int = 0
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)
    slack_keys: list[str] = field(default_factory=list)
    jira_labels: list[str] = field(default_factory=list)
    command_answers: list[int] = field(default_factory=list)  # HTTP statuses of /patch run


class CrashRun:
    """One rollout of the crash plan on a fresh database, killed at ``kill_at`` if given."""

    def __init__(
        self,
        url: str,
        tmp: Path,
        *,
        kill_at: str | None,
        record_steps: bool,
        scenario: Scenario | None = None,
        timeout: float = RUN_TIMEOUT,
        forked: bool = False,
        tick: float = 0.1,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.forked = forked  # serve and audit verify forked from the fork server
        self.tick = tick  # PATCHGATE_ENGINE_TICK
        self.tmp = tmp
        self.kill_at = kill_at
        self.step_log = tmp / "steps.log" if record_steps else None
        self.outcome = Outcome()
        self.logs: list[ServeProcess] = []
        plans = tmp / "plans"
        plans.mkdir()
        self.scenario = scenario or recording_scenario(tmp)
        (plans / "crash.yml").write_text(self.scenario.plan)
        (tmp / "inventory.yml").write_text(self.scenario.inventory)
        self.plans = plans

    def env(self, slack: SlackEmulator, jira: JiraEmulator, *, kill: bool) -> dict[str, str]:
        extra = {
            "PATCHGATE_PLANS_DIR": str(self.plans),
            "PATCHGATE_INVENTORY": str(self.tmp / "inventory.yml"),
            "PATCHGATE_OPERATORS": REQUESTER,
            "PATCHGATE_ENGINE_TICK": str(self.tick),
            "PATCHGATE_SLACK_BOT_TOKEN": TOKEN,
            "PATCHGATE_SLACK_SIGNING_SECRET": SECRET,
            "PATCHGATE_SLACK_API_URL": slack.url,
            "PATCHGATE_JIRA_URL": jira.url,
            "PATCHGATE_JIRA_TOKEN": jira.token,
            "PATCHGATE_JIRA_PROJECT": "OPS",
            "PATCHGATE_JIRA_SEARCH_SETTLE": "0",
            "PATCHGATE_LOG_LEVEL": "INFO",
            "PATCHGATE_METRICS_INTERVAL": "15",  # the default: the matrix reads no metrics
        }
        extra.update(self.scenario.env)
        if kill and self.kill_at is not None:
            extra["PATCHGATE_TEST_KILL_AT"] = self.kill_at
        if self.step_log is not None:
            extra["PATCHGATE_TEST_STEP_LOG"] = str(self.step_log)
        return base_env(self.url, **extra)

    def all_logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-6000:]}" for p in self.logs)

    async def run(self) -> Outcome:
        started = time.monotonic()
        async with slack_emulator(token=TOKEN, channels={CHANNEL, "C0ONCALL"}) as slack:
            jira = JiraEmulator()
            await jira.start()
            db = create_database(self.url)
            try:
                async with aiohttp.ClientSession() as http:
                    await self._drive(slack, jira, db, http)
                self.outcome.seconds = time.monotonic() - started
                await self.check(slack, jira, db)
            finally:
                for proc in self.logs:
                    proc.kill()
                await db.dispose()
                await jira.stop()
        return self.outcome

    def _start(self, slack: SlackEmulator, jira: JiraEmulator) -> ServeProcess:
        kill = self.outcome.kills == 0  # the kill setting until the kill happened
        launcher = ForkedServe if self.forked else ServeProcess
        proc = launcher(
            self.env(slack, jira, kill=kill),
            cwd=self.tmp,
            name=f"serve{self.outcome.starts}",
            port=serve_port(),
        )
        proc.__enter__()
        self.outcome.starts += 1
        self.logs.append(proc)
        return proc

    async def _post(
        self, http: aiohttp.ClientSession, proc: ServeProcess, body: str
    ) -> tuple[int, str] | None:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_request(body),
        }
        url = f"http://127.0.0.1:{proc.port}/slack/events"
        try:
            async with http.post(url, data=body.encode(), headers=headers) as resp:
                return resp.status, await resp.text()
        except (aiohttp.ClientError, OSError):
            return None  # the process is down or not listening yet

    async def _command(
        self, http: aiohttp.ClientSession, proc: ServeProcess, text: str
    ) -> tuple[int, str] | None:
        body = urllib.parse.urlencode(
            {
                "team_id": "T0TEAM",
                "channel_id": CHANNEL,
                "user_id": REQUESTER,
                "user_name": "requester",
                "command": "/patch",
                "text": text,
                "response_url": "https://hooks.slack.invalid/commands/1",
                "trigger_id": "1.2.3",
            }
        )
        return await self._post(http, proc, body)

    async def _click(
        self, http: aiohttp.ClientSession, proc: ServeProcess, value: str, user: str, ts: str
    ) -> tuple[int, str] | None:
        payload = {
            "type": "block_actions",
            "team": {"id": "T0TEAM"},
            "user": {"id": user},
            "channel": {"id": CHANNEL},
            "container": {"type": "message", "channel_id": CHANNEL, "message_ts": ts},
            "message": {"ts": ts},
            "trigger_id": f"trigger-{user}",
            "action_ts": str(time.time_ns()),
            "actions": [
                {
                    "action_id": GateAction.APPROVE.value,
                    "block_id": "gate_actions",
                    "value": value,
                    "type": "button",
                }
            ],
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return await self._post(http, proc, body)

    async def _alive(self, proc: ServeProcess) -> ServeProcess:
        """``proc`` if it still runs; after a SIGKILL, a new process without the kill."""
        code = proc.poll()
        if code is None:
            return proc
        if code == 1 and "cannot listen on" in proc.log():  # its port was taken meanwhile
            assert self._slack is not None and self._jira is not None
            return self._start(self._slack, self._jira)
        assert code == -9, f"serve exited with {code}, not by SIGKILL\n{self.all_logs()}"
        assert self.outcome.kills == 0, "killed twice"
        self.outcome.kills += 1
        return self._start_after_kill()

    def _start_after_kill(self) -> ServeProcess:
        assert self._slack is not None and self._jira is not None
        return self._start(self._slack, self._jira)

    async def _drive(
        self,
        slack: SlackEmulator,
        jira: JiraEmulator,
        db: Database,
        http: aiohttp.ClientSession,
    ) -> None:
        self._slack, self._jira = slack, jira
        proc = self._start(slack, jira)
        deadline = time.monotonic() + self.timeout
        rollout_id: int | None = None
        clicked: set[tuple[int, str]] = set()
        command_again_at = 0.0
        terminal = {s.value for s in ROLLOUT_TERMINAL}
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the crash run did not finish: {await self._where(db, slack)}\n"
                    f"{self.all_logs()}"
                )
            await asyncio.sleep(0.1)
            proc = await self._alive(proc)
            if rollout_id is None:
                rollout_id = await self._rollout_id(db)
                if rollout_id is None and time.monotonic() >= command_again_at:
                    answer = await self._command(http, proc, "run crash")
                    if answer is not None:
                        self.outcome.command_answers.append(answer[0])
                        # Not 200: Bolt gave up waiting for the ack (3 s) on a starved
                        # machine, and the handler may still start the rollout: ask again
                        # only if none appeared meanwhile (a second one would be refused).
                        wait = 0.2 if answer[0] == 200 else COMMAND_AGAIN
                        command_again_at = time.monotonic() + wait
                continue
            async with read_only(db) as session:
                rollout = await session.get(Rollout, rollout_id)
                approvals = set(
                    (await session.execute(sa.select(Approval.gate_id, Approval.user_id))).all()
                )
                quorum = dict((await session.execute(sa.select(Gate.id, Gate.quorum))).all())
            assert rollout is not None
            if rollout.state in terminal:
                if await self._settled(db):
                    break
                continue
            for message in slack.posted(CHANNEL):
                current = slack.message(CHANNEL, message["ts"]) or message
                value = buttons(current).get(GateAction.APPROVE.value)
                if value is None:
                    continue
                ref = GateRef.model_validate_json(value)
                for user in APPROVERS[: quorum.get(ref.gate_id, 0)]:
                    key = (ref.gate_id, user)
                    if key in clicked or (ref.gate_id, user) in approvals:
                        continue
                    answer = await self._click(http, proc, value, user, message["ts"])
                    if answer is not None and answer[0] == 200:
                        clicked.add(key)
        assert await self._terminate(proc) == 0, self.all_logs()

    async def _terminate(self, proc: ServeProcess) -> int:
        """SIGTERM, and the exit code (within 60 s), without blocking the event loop."""
        if not isinstance(proc, ForkedServe):
            return await asyncio.to_thread(proc.terminate, timeout=60)
        assert proc.process is not None
        if proc.process.exitcode is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                return await wait_exit(proc.process)
        except TimeoutError:
            raise AssertionError(
                f"serve did not exit within 60s of SIGTERM\n{proc.log()}"
            ) from None

    async def _where(self, db: Database, slack: SlackEmulator) -> str:
        async with read_only(db) as session:
            rollout = await session.scalar(sa.select(Rollout))
            gates = [(g.id, g.state) for g in await session.scalars(sa.select(Gate))]
            outbox = Counter((await session.scalars(sa.select(OutboxItem.state))).all())
        ephemeral = [c.params.get("text") for c in slack.called("chat.postEphemeral")]
        return (
            f"rollout {rollout and rollout.state}, gates {gates}, outbox {dict(outbox)}, "
            f"ephemeral answers {ephemeral}"
        )

    async def _rollout_id(self, db: Database) -> int | None:
        async with read_only(db) as session:
            return await session.scalar(sa.select(Rollout.id))

    async def _settled(self, db: Database) -> bool:
        async with read_only(db) as session:
            states = Counter((await session.scalars(sa.select(OutboxItem.state))).all())
        return set(states) <= {"delivered"}

    # --- the end state ----------------------------------------------------------------------

    async def check(self, slack: SlackEmulator, jira: JiraEmulator, db: Database) -> None:
        """Every host patched exactly once (the fleet's record of apply operations), none
        skipped, every gate decided once (one gate.state event to `approved`, one vote per
        approver), every Slack message and Jira ticket delivered exactly once (the
        emulators' records, by their idempotency keys), and `patchgate audit verify` passes."""
        logs = self.all_logs
        expected = self.scenario.expected_runs
        applied = await asyncio.to_thread(self.scenario.applied)
        assert applied == dict.fromkeys(expected, 1), (applied, logs())
        async with read_only(db) as session:
            rollout = await session.scalar(sa.select(Rollout))
            runs = dict((await session.execute(sa.select(HostRun.host_name, HostRun.state))).all())
            gates = (await session.scalars(sa.select(Gate).order_by(Gate.id))).all()
            votes = Counter(
                (await session.execute(sa.select(Approval.gate_id, Approval.user_id))).all()
            )
            closes = Counter(
                json.loads(e.body)["data"]["gate_id"]
                for e in await session.scalars(sa.select(Event).where(Event.kind == "gate.state"))
            )
        assert rollout is not None and rollout.state == self.scenario.final_state, (
            rollout,
            logs(),
        )
        assert runs == expected, (runs, logs())
        assert [g.state for g in gates] == ["approved", "approved"], logs()
        assert closes == {g.id: 1 for g in gates}, closes
        assert votes == {
            (gates[0].id, APPROVERS[0]): 1,
            (gates[1].id, APPROVERS[0]): 1,
            (gates[1].id, APPROVERS[1]): 1,
        }, votes

        keys = [
            m["metadata"]["event_payload"]["key"]
            for m in slack.posted()
            if m.get("metadata") and "key" in m["metadata"].get("event_payload", {})
        ]
        assert keys, "no Slack message carried its key"
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        assert not duplicates, (duplicates, logs())
        self.outcome.slack_keys = sorted(keys)
        labels = [
            label
            for issue in jira.issues.values()
            for label in issue.labels
            if label.startswith("pg-outbox-")
        ]
        assert len(labels) == len(jira.issues), "every ticket carries its outbox key"
        assert len(set(labels)) == len(labels), [i.fields for i in jira.issues.values()]
        assert len(jira.issues) == self.scenario.tickets, [
            i.fields.get("summary") for i in jira.issues.values()
        ]
        for issue in jira.issues.values():  # a comment (the rollback's) not repeated either
            bodies = [str(c.get("body")) for c in issue.comments]
            assert len(bodies) == len(set(bodies)), (issue.key, bodies)
        self.outcome.jira_labels = sorted(
            (i.fields.get("summary") or "") + f" [{len(i.comments)} comments]"
            for i in jira.issues.values()
        )
        if self.forked:
            code, output = await forked_patchgate(
                base_env(self.url), "audit", "verify", cwd=self.tmp, output=self.tmp / "verify.out"
            )
        else:
            verify = await asyncio.to_thread(
                patchgate, base_env(self.url), "audit", "verify", cwd=self.tmp
            )
            code, output = verify.returncode, verify.stdout + verify.stderr
        assert code == 0, output
        assert "audit chain OK" in output, output
        if self.step_log is not None:
            self.outcome.steps = self.step_log.read_text().split()


def kill_points(steps: list[str]) -> list[str]:
    """Every persisted step of a run as STEP:N (the N-th step of that name)."""
    seen: Counter[str] = Counter()
    points = []
    for step in steps:
        seen[step] += 1
        points.append(f"{step}:{seen[step]}")
    return points


# --- many runs at once ------------------------------------------------------------------------


@dataclass
class PointResult:
    """One kill point's run in a matrix: its wall time, and why it failed (None: passed)."""

    point: str
    seconds: float
    failure: str | None


def concurrency() -> int:
    """How many runs of a matrix go at once: PATCHGATE_CRASH_CONCURRENCY, else 2 per core
    (shared among pytest-xdist's workers, which run other test files beside it). A run
    keeps about half a core busy (it also waits: for ticks, polls, deliveries); more at
    once only starves the processes (Bolt's 3 s ack deadline was missed at 3 per core on
    a machine already loaded by other work)."""
    given = os.environ.get("PATCHGATE_CRASH_CONCURRENCY")
    if given:
        return int(given)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    return max(1, 2 * (os.cpu_count() or 1) // max(1, workers))


async def run_matrix(
    templates: Templates,
    backend: str,
    points: Sequence[str],
    root: Path,
    *,
    at_once: int,
    run_timeout: float = MATRIX_TIMEOUT,
    tick: float = MATRIX_TICK,
) -> list[PointResult]:
    """Run the crash plan killed at each of ``points`` on ``backend``, ``at_once`` runs
    at a time, each on its own database copy in its own directory under ``root``. A run
    that raises, or whose serve was never killed, is a failure naming its kill point,
    with the logs of its processes."""
    await asyncio.to_thread(templates.prepare, backend)
    gate = asyncio.Semaphore(at_once)

    async def one(point: str) -> PointResult:
        async with gate:
            tmp = root / f"{backend}-{point.replace(':', '-')}"
            tmp.mkdir()
            started = time.monotonic()
            failure: str | None = None
            async with templates.fresh_async(backend, tmp) as url:
                run = CrashRun(
                    url,
                    tmp,
                    kill_at=point,
                    record_steps=False,
                    timeout=run_timeout,
                    forked=True,
                    tick=tick,
                )
                try:
                    await run.run()
                except Exception as exc:
                    failure = "".join(traceback.format_exception_only(exc)).strip()
                    if "--- serve" not in failure:
                        failure += "\n" + run.all_logs()
                else:
                    if run.outcome.kills != 1:
                        failure = f"{point} was never reached (no SIGKILL)\n{run.all_logs()}"
            return PointResult(point, time.monotonic() - started, failure)

    return list(await asyncio.gather(*(one(point) for point in points)))
