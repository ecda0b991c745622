"""What every step of the engine shares: the dependencies, the clock, the unit of work
that checks the leader epoch and fires the step hook, audit events, notes, host
commands and the inventory.

The step hook is the crash matrix's kill point: it fires after a step's transaction
has committed (or after a host command returned), with the step's name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.backends import BackendDeclaration
from workflows.db import Database, holds_write_turn, read_only, unit_of_work
from workflows.engine._group import GroupCommit, Write
from workflows.errors import ExecutorError, StaleLeader
from workflows.models import Host, HostRun, LeaderState, Rollout
from workflows.notify import NoteAbout, rollout_note
from workflows.ports import Clock, Executor, HealthChecker, Inventory, InventoryHost
from workflows.states import HOST_SETTLED

if TYPE_CHECKING:
    from workflows.assessment import HostAssessor
    from workflows.schedule import Schedules

StepHook = Callable[[str], None]
T = TypeVar("T")

LOCK_NAME = "engine"
# An engine step that raises on the same host (or the same rollout) this many times in
# a row is given up: the host (or the ring and rollout) fails with the error as reason.
STEP_RETRY_LIMIT = 5
# A step that records a whole fleet (facts, the pre-pin assessment) writes it in short
# transactions: about CHUNK_SECONDS each (at most WRITE_CHUNK hosts, the first one
# FIRST_CHUNK), so no other writer (the leader heartbeat, the outbox, Slack's acks)
# waits long behind a 10,000-host step, however loaded the machine is.
WRITE_CHUNK = 200
FIRST_CHUNK = 20
CHUNK_SECONDS = 0.05
PATCHED_HOSTS = "engine_patched_hosts"  # session.info: host name -> last_patched_at
MOVED_RUNS = "engine_moved_runs"  # session.info: host runs a transaction moved on, by id
ENGINE_DB_SLOTS = 10
_SETTLED = frozenset(s.value for s in HOST_SETTLED)
# Set while this task holds one of the engine's database slots, or (SQLite) its writer
# turn: a nested session of the same task then takes none (waiting for a second could
# wait for ever).
_HOLDING: ContextVar[bool] = ContextVar("patchgate_engine_db_slot", default=False)
_WRITING: ContextVar[bool] = ContextVar("patchgate_engine_writer", default=False)


class Chunks(Generic[T]):
    """Runs of ``items`` sized from how long the last one took to write:
    ``take()`` the next run (and whether it is the last) before its transaction,
    ``begin()`` and ``end()`` around the writing inside it."""

    def __init__(
        self, items: Sequence[T], *, first: int = FIRST_CHUNK, most: int = WRITE_CHUNK
    ) -> None:
        self.items = items
        self.at = 0
        self.size = first
        self.most = most
        self.started = 0.0
        self.taken = 0

    def __bool__(self) -> bool:
        return self.at < len(self.items) or (self.at == 0 and self.taken == 0)

    def take(self) -> tuple[Sequence[T], bool]:
        part = self.items[self.at : self.at + self.size]
        self.at += len(part)
        self.taken = max(len(part), 1)
        return part, self.at >= len(self.items)

    def begin(self) -> None:
        self.started = time.monotonic()

    def end(self) -> None:
        per_item = max(time.monotonic() - self.started, 1e-6) / self.taken
        self.size = max(1, min(self.most, int(CHUNK_SECONDS / per_item)))


@dataclass
class EngineDeps:
    db: Database
    executor: Executor
    health: HealthChecker
    inventory: Inventory
    clock: Clock
    concurrency: int = 50
    schedule: Schedules | None = None  # due times (issue 6)
    # Stored assessments older than this are not used to pin the patch set.
    assessment_max_age: dt.timedelta = dt.timedelta(hours=24)
    # Right before pinning, the rollout's hosts are assessed again (issue 16): by this
    # assessor (None: the executor's upgradable list, LiveAssessor), within this time.
    assessor: HostAssessor | None = None
    refresh_timeout: float = 300.0
    # The known-exploited list (CVE -> date added) for the CVEs a backend's tool reports
    # (issue 21: a Windows KB's CVEs score +25 as a Linux advisory's do; the SSH hosts'
    # come through ``assessor``).
    known_exploited: Mapping[str, dt.date | None] = field(default_factory=dict)
    step_retry_limit: int = STEP_RETRY_LIMIT
    # The backends by name (issue 19; ``integrations.backends.build_backends``). Empty:
    # only ``ssh``, host by host through ``executor``, as before backends existed.
    backends: Mapping[str, BackendDeclaration] = field(default_factory=dict)
    # Following a batch backend's job: the longest one wait (the backend's ``follow``
    # returns by then, done or not) and the pause before following a running job again.
    job_wait: float = 30.0
    job_poll: float = 1.0
    # Database sessions the engine holds at once (its transactions and per-host reads):
    # a batch of 900 hosts queues here, not on the connection pool, which keeps room
    # for /healthz, Slack's acks and the outbox (workflows.db.POOL_SIZE + overflow).
    db_slots: int = ENGINE_DB_SLOTS
    # Requests a person waits for (serve: Slack's HTTP requests until their ack): while
    # one is in flight, the engine's next database step waits (GIVE_WAY_MAX at most),
    # so the ack does not queue behind a whole round of host steps on the event loop.
    give_way: GiveWay | None = None


class GiveWay(Protocol):
    """What the engine reads of ``bot.slack.deps.Quiet``."""

    @property
    def in_flight(self) -> int: ...

    async def wait(self, deadline: float, /) -> None: ...


GIVE_WAY_MAX = 0.25  # seconds a step waits for the requests in flight, each time


@asynccontextmanager
async def _once(held: ContextVar[bool], sem: asyncio.Semaphore) -> AsyncIterator[None]:
    """``sem`` for this task, unless it holds it already (``held``)."""
    if held.get():
        yield
        return
    async with sem:
        token = held.set(True)
        try:
            yield
        finally:
            held.reset(token)


class StepContext:
    """The plumbing one engine's steps share (one per :class:`Engine`)."""

    def __init__(self, deps: EngineDeps, *, epoch: int | None, hook: StepHook) -> None:
        self.deps = deps
        self.db = deps.db
        self.epoch = epoch
        self.hook = hook
        self.sem = asyncio.Semaphore(deps.concurrency)
        self.db_slots = asyncio.Semaphore(deps.db_slots)
        # SQLite has one writer at a time, and its lock is not fair (a waiter polls):
        # the engine's writers take turns here, so the leader heartbeat and the outbox
        # wait for one engine transaction at most, not for a crowd of them.
        self.writer = asyncio.Semaphore(1 if deps.db.dialect == "sqlite" else deps.db_slots)
        self.ring_positions: dict[int, int] = {}  # ring id -> position (never changes)
        # Host runs as the engine's own last committed transaction left them (taken,
        # once, by the host's next step instead of reading the row again).
        self.committed_runs: dict[int, HostRun] = {}
        # Runs a host task is driving now: one it settled is kept for that task's next
        # pass (which sees it settled and ends, with no read), then dropped by the task.
        self.driving: set[int] = set()
        self.fresh_ops: set[str] = set()  # apply intents written by this instance
        self.halted_jobs: set[str] = set()  # job keys this engine asked its tool to halt
        self.lease_waits: set[tuple[int, int]] = set()  # (rollout, batch) already announced
        self.step_failures: dict[str, int] = {}  # "host:<run id>" / "rollout:<id>" -> tries
        self.group = GroupCommit(self)  # host steps' writes, committed together

    def now(self) -> dt.datetime:
        return self.deps.clock.now()

    async def give_way(self) -> None:
        """Wait (GIVE_WAY_MAX at most) while Slack requests wait for their answer, unless
        this task holds a database slot (others would wait for it meanwhile)."""
        way = self.deps.give_way
        if way is not None and way.in_flight > 0 and not self.holds_slot():
            await way.wait(time.monotonic() + GIVE_WAY_MAX)

    @asynccontextmanager
    async def slot(self, *, write: bool = False) -> AsyncIterator[None]:
        """One of the engine's database slots (and, to write, a writer turn) for this
        task, taken once however nested; first, room for the requests in flight."""
        await self.give_way()
        async with _once(_HOLDING, self.db_slots):
            if write:
                async with _once(_WRITING, self.writer):
                    yield
            else:
                yield

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only session in one of the engine's database slots."""
        async with self.slot(), read_only(self.db) as session:
            yield session

    def holds_slot(self) -> bool:
        """Whether this task holds a database slot or write turn already (it is inside
        a transaction of its own)."""
        return _HOLDING.get() or _WRITING.get() or holds_write_turn(self.db)

    @asynccontextmanager
    async def tx(self, step: str) -> AsyncIterator[AsyncSession]:
        """A write transaction that checks the leader epoch; the hook runs after commit."""
        async with self.transaction() as session:
            yield session
        self.hook(step)

    async def host_tx(self, step: str, run_id: int, write: Write) -> None:
        """A host step's write: committed with the writes of other hosts' steps that come
        at the same time (one transaction, :mod:`workflows.engine._group`), then the hook."""
        await self.group.run(step, write, (run_id,))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction that checks the leader epoch (no hook)."""
        async with self.slot(write=True), unit_of_work(self.db) as session:
            if self.epoch is not None:
                # FOR SHARE: a takeover's epoch bump waits for this transaction, so no
                # write checked against the old epoch can commit after the new leader began.
                current = await session.scalar(
                    sa.select(LeaderState.epoch)
                    .where(LeaderState.name == LOCK_NAME)
                    .with_for_update(read=True)
                )
                if current != self.epoch:
                    raise StaleLeader(
                        f"leader epoch is {current}, this engine has {self.epoch}; stepping down"
                    )
            yield session
            if patched := session.info.pop(PATCHED_HOSTS, None):
                # one UPDATE for the transaction's healthy hosts, not a read and a write each
                hosts = cast(sa.Table, Host.__table__)
                await session.execute(
                    sa.update(hosts)
                    .where(hosts.c.name == sa.bindparam("b_name"))
                    # updated_at stays: it tells Slack's fleet view (bot.slack.fleet) that
                    # facts or reachability changed, which a patch stamp does not; moving
                    # it made every /patch status of a rollout recompute the whole fleet
                    .values(last_patched_at=sa.bindparam("b_at"), updated_at=hosts.c.updated_at),
                    [{"b_name": name, "b_at": at} for name, at in patched.items()],
                )
        for run_id, run in session.info.pop(MOVED_RUNS, {}).items():
            if run.state in _SETTLED and run_id not in self.driving:
                # No next step will take it (a ring rollback reads it again): not kept,
                # or a 100,000-host rollout would hold every host run it settled.
                self.committed_runs.pop(run_id, None)
            else:
                self.committed_runs[run_id] = run

    def patched(self, session: AsyncSession, host_name: str) -> None:
        """Stamp the host's ``last_patched_at`` when this transaction commits."""
        session.info.setdefault(PATCHED_HOSTS, {})[host_name] = self.now()

    async def host_run(self, run_id: int) -> HostRun | None:
        """A host run as it is now: as this engine's last transaction committed it, or
        read from the database when that moved it on no further."""
        if (run := self.committed_runs.pop(run_id, None)) is not None:
            return run
        async with self.read() as session:
            return await session.get(HostRun, run_id)

    async def event(
        self, session: AsyncSession, kind: str, rollout_id: int | None, /, **data: Any
    ) -> None:
        # Not flushed one by one: a step's events go out together (with its other rows),
        # and the audit head is written once, when the step's transaction commits.
        await audit.append(
            session,
            kind=kind,
            at=self.now(),
            actor="patchgate",
            rollout_id=rollout_id,
            data=data,
            flush=False,
        )

    async def note(
        self,
        session: AsyncSession,
        rollout: Rollout,
        suffix: str,
        text: str,
        kind: NoteAbout,
        **extra: Any,
    ) -> None:
        await outbox.enqueue(
            session,
            **rollout_note(rollout, suffix, text, now=self.now(), kind=kind, extra=extra or None),
        )

    async def command(
        self, host: InventoryHost, command: str, call: Callable[[], Awaitable[T]]
    ) -> tuple[T | None, ExecutorError | None, dict[str, Any]]:
        """Run one executor call under the concurrency bound; returns (result, error, audit).
        First, room for the Slack requests in flight: 50 hosts' commands answered at once
        are 50 steps ahead of an ack on the event loop."""
        await self.give_way()
        started = time.monotonic()
        async with self.sem:
            try:
                result = await call()
                error = None
            except ExecutorError as exc:
                result, error = None, exc
        record: dict[str, Any] = {
            "host": host.name,
            "command": command,
            "duration_ms": round((time.monotonic() - started) * 1000),
        }
        exit_code = getattr(result, "exit_code", None)
        if exit_code is None and error is not None:
            exit_code = getattr(error, "exit_code", None)
        record["exit_code"] = exit_code
        if error is not None:
            record["error"] = str(error)
        return result, error, record

    async def inventory_hosts(self) -> list[InventoryHost]:
        """The inventory's hosts, as they are now. Reading the inventory parses its files
        (seconds for a large fleet), so it runs in a thread: the event loop it would
        otherwise hold also acks Slack and answers /healthz."""
        return list(await asyncio.to_thread(self.deps.inventory.hosts))

    async def hosts(self) -> dict[str, InventoryHost]:
        """The inventory by host name, as it is now (read off the event loop)."""
        return {h.name: h for h in await self.inventory_hosts()}
