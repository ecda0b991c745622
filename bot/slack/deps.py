"""What every Slack handler needs, built once by ``bot.app.create_app``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient

from bot.backends import backend_catalog
from bot.settings import Settings
from bot.slack.fleet import FleetView, FleetViews, RowsKey
from workflows.db import Database, read_only
from workflows.gates import Actor
from workflows.models import Rollout
from workflows.plans import LoadedPlan, PatchPlan, load_plans
from workflows.ports import Clock, Directory, Inventory
from workflows.states import ROLLOUT_ACTIVE_VALUES as ACTIVE

T = TypeVar("T")
# the largest row id the database can hold (INTEGER primary keys: 32 bits on PostgreSQL);
# a number from Slack beyond it names no row, and a query with it fails (a 500 before)
MAX_ROW_ID = 2**31 - 1
AFTER_ACK_DELAY = 0.5  # seconds: how long work after an ack may wait for quiet
AFTER_ACK_CONCURRENCY = 1  # journaled decisions processed at once (4 measured worse)


class Quiet:
    """How many Slack HTTP requests are waiting for their answer (``bot.server`` counts
    them); :meth:`wait` returns when none is, or at a deadline."""

    def __init__(self) -> None:
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight = 0
            self._idle.set()

    async def wait(self, deadline: float) -> None:
        while self.in_flight > 0 and (left := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(self._idle.wait(), left)
            except TimeoutError:
                return


@dataclass
class SlackDeps:
    settings: Settings
    db: Database
    directory: Directory
    clock: Clock
    inventory: Inventory
    client: AsyncWebClient
    _plans: tuple[Any, dict[str, LoadedPlan]] | None = field(default=None, repr=False)
    _writes: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    quiet: Quiet = field(default_factory=lambda: Quiet(), repr=False)
    _after: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(AFTER_ACK_CONCURRENCY), repr=False
    )
    fleet_views: FleetViews = field(default_factory=FleetViews, repr=False)
    # /patch status's rollout lines and what they were read at (bot.slack.commands.builtin)
    status_lines: tuple[Any, str] | None = field(default=None, repr=False)

    async def fleet(self, rows: RowsKey | None = None) -> FleetView:
        """The inventory's hosts, their rows and the coverage gaps, shared between the
        requests that need them (``bot.slack.fleet``); ``rows``: ``fleet.rows_key`` if
        the caller read it in its own (since closed) transaction."""
        return await self.fleet_views.get(self, rows)

    async def after_ack(self, work: Callable[[], Awaitable[T]], *, limited: bool = True) -> T:
        """Run work that follows an ack (a journaled click's decision, a deferred reply)
        once the requests still waiting for their ack have been answered (at most
        ``AFTER_ACK_DELAY`` after it was queued): under a burst the acks go first instead
        of sharing the event loop with every decision. ``limited`` work (the short
        decisions) also runs at most ``AFTER_ACK_CONCURRENCY`` at a time; slow deferred
        replies (reports, inventory reads) are not limited, so they hold up no click."""
        deadline = time.monotonic() + AFTER_ACK_DELAY
        if not limited:
            await self.quiet.wait(deadline)
            return await work()
        async with self._after:
            await self.quiet.wait(deadline)
            return await work()

    @asynccontextmanager
    async def one_writer(self) -> AsyncIterator[None]:
        """Around a Slack request's write transaction. On SQLite (one writer at a time)
        this process's writers take turns here instead of in SQLite's busy handler,
        which sleeps up to 100 ms between tries: a burst of 50 clicks released at once
        otherwise spends most of its time asleep. A no-op on PostgreSQL."""
        if self.db.dialect != "sqlite":
            yield
            return
        async with self._writes:
            yield

    async def actor(self, user_id: str) -> Actor:
        """Who is acting: the immutable user ID and the user groups it belongs to."""
        return Actor(
            user_id=user_id, groups=await self.directory.groups_of(user_id), source="slack"
        )

    def plans(self) -> dict[str, LoadedPlan]:
        """The plans directory, parsed again only when a plan file changed (ruamel.yaml
        takes tens of milliseconds per file: too much for every /patch command)."""
        key = _plans_key(self.settings.plans_dir)
        if key is None or self._plans is None or self._plans[0] != key:
            plans = load_plans(
                self.settings.plans_dir, backend_catalog(self.settings)
            )  # errors are raised every time
            self._plans = (key, plans) if key is not None else None
            return dict(plans)
        return dict(self._plans[1])

    @property
    def operators(self) -> frozenset[str]:
        return self.settings.operator_ids


def _plans_key(directory: Path) -> Any:
    """What would make ``load_plans`` answer differently: each plan file's identity."""
    try:
        return tuple(
            sorted(
                (p.name, st.st_ino, st.st_size, st.st_mtime_ns)
                for p in directory.iterdir()
                if p.suffix in (".yml", ".yaml") and (st := p.stat())
            )
        )
    except OSError:
        return None


async def candidate_groups(settings: Settings, db: Database) -> frozenset[str]:
    """User groups whose membership matters now: operators', and active rollouts' approvers."""
    groups = {g for g in settings.operator_ids | settings.admin_ids if g.startswith("S")}
    async with read_only(db) as session:
        snapshots = await session.scalars(
            sa.select(Rollout.plan_snapshot).where(Rollout.state.in_(ACTIVE))
        )
        for snapshot in snapshots:
            plan = PatchPlan.model_validate(snapshot)
            for ring in plan.rings:
                if ring.gate.approvers is not None:
                    groups.update(ring.gate.approvers.groups)
    return frozenset(groups)


class CandidateGroups:
    """:func:`candidate_groups` for every click, cheaper: one query for the active
    rollouts' ids, and each rollout's approver groups parsed once (a rollout's plan
    snapshot never changes)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._by_rollout: dict[int, frozenset[str]] = {}

    async def __call__(self) -> frozenset[str]:
        ids = self.settings.operator_ids | self.settings.admin_ids
        groups = {g for g in ids if g.startswith("S")}
        async with read_only(self.db) as session:
            active = set(
                await session.scalars(sa.select(Rollout.id).where(Rollout.state.in_(ACTIVE)))
            )
            missing = active - self._by_rollout.keys()
            if missing:
                rows = await session.execute(
                    sa.select(Rollout.id, Rollout.plan_snapshot).where(Rollout.id.in_(missing))
                )
                for rollout_id, snapshot in rows:
                    plan = PatchPlan.model_validate(snapshot)
                    self._by_rollout[rollout_id] = frozenset(
                        g
                        for ring in plan.rings
                        if ring.gate.approvers is not None
                        for g in ring.gate.approvers.groups
                    )
        for rollout_id in self._by_rollout.keys() - active:
            del self._by_rollout[rollout_id]
        for rollout_id in active:
            groups |= self._by_rollout.get(rollout_id, frozenset())
        return frozenset(groups)
