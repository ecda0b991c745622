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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.backends import BackendDeclaration
from workflows.db import Database, unit_of_work
from workflows.errors import ExecutorError, StaleLeader
from workflows.models import LeaderState, Rollout
from workflows.notify import NoteAbout, rollout_note
from workflows.ports import Clock, Executor, HealthChecker, Inventory, InventoryHost

if TYPE_CHECKING:
    from workflows.assessment import HostAssessor
    from workflows.schedule import Schedules

StepHook = Callable[[str], None]
T = TypeVar("T")

LOCK_NAME = "engine"
# An engine step that raises on the same host (or the same rollout) this many times in
# a row is given up: the host (or the ring and rollout) fails with the error as reason.
STEP_RETRY_LIMIT = 5


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
    step_retry_limit: int = STEP_RETRY_LIMIT
    # The backends by name (issue 19; ``integrations.backends.build_backends``). Empty:
    # only ``ssh``, host by host through ``executor``, as before backends existed.
    backends: Mapping[str, BackendDeclaration] = field(default_factory=dict)
    # Following a batch backend's job: the longest one wait (the backend's ``follow``
    # returns by then, done or not) and the pause before following a running job again.
    job_wait: float = 30.0
    job_poll: float = 1.0


class StepContext:
    """The plumbing one engine's steps share (one per :class:`Engine`)."""

    def __init__(self, deps: EngineDeps, *, epoch: int | None, hook: StepHook) -> None:
        self.deps = deps
        self.db = deps.db
        self.epoch = epoch
        self.hook = hook
        self.sem = asyncio.Semaphore(deps.concurrency)
        self.fresh_ops: set[str] = set()  # apply intents written by this instance
        self.lease_waits: set[tuple[int, int]] = set()  # (rollout, batch) already announced
        self.step_failures: dict[str, int] = {}  # "host:<run id>" / "rollout:<id>" -> tries

    def now(self) -> dt.datetime:
        return self.deps.clock.now()

    @asynccontextmanager
    async def tx(self, step: str) -> AsyncIterator[AsyncSession]:
        """A write transaction that checks the leader epoch; the hook runs after commit."""
        async with unit_of_work(self.db) as session:
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
        self.hook(step)

    async def event(
        self, session: AsyncSession, kind: str, rollout_id: int | None, /, **data: Any
    ) -> None:
        await audit.append(
            session, kind=kind, at=self.now(), actor="patchgate", rollout_id=rollout_id, data=data
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
        """Run one executor call under the concurrency bound; returns (result, error, audit)."""
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
