"""The fleet as Slack's answers show it: the inventory's hosts, their stored rows, the gaps.

``/patch status``, ``/patch hosts`` and App Home need it, and computing it reads the whole
inventory and every row of ``hosts``: work that grows with the fleet, done on the event
loop that acks every other Slack request. A burst of ``/patch status`` (or of App Home
openings) would do it once per request, each ahead of the acks still waiting.
:class:`FleetViews` computes it once and shares it:

- one computation at a time: callers that arrive while one runs wait for its result;
- a view is reused while what it was computed from has not changed. The ``hosts`` table
  is checked on every call with one aggregate query, ``count(*)`` and ``max(updated_at)``
  (every write of facts or reachability to ``hosts`` goes through the ORM, whose
  ``onupdate`` sets ``updated_at``; the engine's ``last_patched_at`` stamps leave it), so
  facts gathered by any process show at once; gaps are worked out again each minute
  of the clock (a gap opens when facts grow older than the limit).
- a view ``REUSE`` seconds old is still answered at once, and computed again behind it
  (one at a time), so the inventory files are read again then: an edited inventory
  shows in the answers after that one. A large fleet's view (``LARGE``) is
  answered that way after the hosts changed too, while it is younger than ``STALE_MAX``:
  a person's ``/patch status`` during a 10,000-host rollout no longer waits for the
  whole fleet to be read again while discovery writes it, and the view is computed
  again at most every ``LARGE_RENEW`` seconds while the hosts keep changing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.settings import Settings
from workflows.assessment import coverage_gaps
from workflows.db import Database, in_parts_of, read_only
from workflows.models import Host
from workflows.ports import Clock, Inventory, InventoryHost


class FleetDeps(Protocol):
    """What a fleet view is computed from (``bot.slack.deps.SlackDeps`` has it)."""

    @property
    def db(self) -> Database: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def inventory(self) -> Inventory: ...
    @property
    def settings(self) -> Settings: ...


log = logging.getLogger("patchgate.slack")

REUSE = 5.0  # seconds after which a view is computed again, behind the answer
# A large fleet's view (LARGE hosts or more: reading them all takes a good part of a
# second on the event loop) answers even after the hosts changed, while it is younger
# than STALE_MAX, and is computed again behind the answer: a person's command does not
# wait for the whole fleet to be read while discovery writes it. A smaller fleet's view
# is computed at once, as before. (By size, not by a measured time: a busy machine
# must not change what an answer shows.)
LARGE = 2000
STALE_MAX = 30.0
LARGE_RENEW = 10.0


@dataclass(frozen=True, slots=True)
class HostRow:
    """What the answers show of a host's stored row: its OS and whether it is covered
    (not the whole ``Host``: a 100,000-host view of ORM objects took hundreds of MB)."""

    os_family: str | None
    os_id: str | None
    os_version: str | None
    build: str | None
    reachable: bool | None
    last_error: str | None
    facts_at: dt.datetime | None


_ROW_COLUMNS = (
    Host.name,
    Host.os_family,
    Host.os_id,
    Host.os_version,
    Host.build,
    Host.reachable,
    Host.last_error,
    Host.facts_at,
)


@dataclass(frozen=True)
class FleetView:
    hosts: Sequence[InventoryHost]  # the inventory's hosts, in its order
    rows: Mapping[str, HostRow]  # stored host rows by name
    gaps: Sequence[tuple[str, str]]  # (host, why): unreachable, never gathered, stale facts


class FleetViews:
    """:func:`compute` shared between callers; see the module docstring."""

    def __init__(self, *, reuse: float = REUSE, monotonic: Callable[[], float] = time.monotonic):
        self.reuse = reuse
        self._monotonic = monotonic
        self._view: tuple[Any, float, FleetView] | None = None  # (key, made at, view)
        self._lock = asyncio.Lock()
        self._renewing: asyncio.Task[None] | None = None
        self.computed = 0  # how many views were computed (tests)

    async def get(self, deps: FleetDeps, rows: RowsKey | None = None) -> FleetView:
        """``rows``: :func:`rows_key` if the caller read it in its own transaction (closed
        by now: no connection is held while waiting here, or callers queued behind one
        computation would hold the whole pool and starve it)."""
        if rows is None:
            async with read_only(deps.db) as session:
                rows = await rows_key(session)
        key = (rows, deps.clock.now().replace(second=0, microsecond=0))
        cached = self._view
        if cached is not None:
            age = self._monotonic() - cached[1]
            # a large fleet's view (slow to compute) answers while it is not too old
            large = len(cached[2].hosts) >= LARGE
            if cached[0] == key or (large and age < STALE_MAX):
                # computed again behind the answer: when REUSE old, or when the hosts
                # changed (a large fleet's: once it is LARGE_RENEW old, not after every
                # host gathered: reading 100,000 rows again and again was half of serve's
                # CPU during discovery)
                changed = cached[0] != key and (not large or age >= LARGE_RENEW)
                if changed or age >= self.reuse:
                    self._renew(deps, key)
                return cached[2]
        async with self._lock:  # one caller computes; those waiting here then reuse it
            cached = self._view
            if cached is not None and cached[0] == key:
                return cached[2]
            return await self._compute(deps, key)

    async def _compute(self, deps: FleetDeps, key: Any) -> FleetView:
        view = await compute(deps)
        self._view = (key, self._monotonic(), view)
        self.computed += 1
        return view

    async def renewed(self) -> None:
        """Wait for the computation behind an answer, if one runs (tests, shutdown)."""
        if self._renewing is not None:
            await asyncio.shield(self._renewing)

    def _renew(self, deps: FleetDeps, key: Any) -> None:
        if self._renewing is not None and not self._renewing.done():
            return

        async def renew() -> None:
            async with self._lock:
                cached = self._view
                fresh = cached is not None and self._monotonic() - cached[1] < self.reuse
                if fresh and cached is not None and cached[0] == key:
                    return  # computed meanwhile
                try:
                    await self._compute(deps, key)
                except Exception:  # the next call computes it; the old view stays
                    log.warning("could not compute the fleet view again", exc_info=True)

        self._renewing = asyncio.get_running_loop().create_task(renew(), name="fleet-view")


RowsKey = tuple[Any, ...]


async def rows_key(session: AsyncSession) -> RowsKey:
    """What changes whenever a row of ``hosts`` is added or written."""
    query = sa.select(sa.func.count(Host.id), sa.func.max(Host.updated_at))
    return tuple((await session.execute(query)).one())


async def compute(deps: FleetDeps) -> FleetView:
    """The fleet now: the inventory is read off the event loop (a large one takes a while),
    the stored rows a part at a time (only the columns the answers show)."""
    hosts = await asyncio.to_thread(deps.inventory.hosts)
    rows: dict[str, HostRow] = {}
    async with read_only(deps.db) as session:
        async for part in in_parts_of(session, sa.select(*_ROW_COLUMNS), scalars=False):
            rows.update((name, HostRow(*rest)) for name, *rest in part)
    # every inventory host once: in a thread, so the event loop gets its turns meanwhile
    gaps = await asyncio.to_thread(
        partial(
            coverage_gaps,
            hosts,
            rows,
            now=deps.clock.now(),
            max_age=dt.timedelta(hours=deps.settings.facts_max_age_hours),
        )
    )
    return FleetView(hosts=tuple(hosts), rows=rows, gaps=tuple(gaps))
