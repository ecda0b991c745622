"""The transactional outbox: messages and tickets written with the change that causes them.

Producers call :func:`enqueue` inside their own transaction, so a row exists if and
only if the change committed. The leader's :class:`OutboxWorker` delivers rows through
deliverers that adapters register per topic (``integrations/``): the domain only knows
the :class:`Deliverer` protocol.

Delivery rules
--------------
- A row is claimable when it is ``pending``, due (``next_attempt_at <= now``), not
  leased (or its lease expired), its topic has a deliverer, no earlier (lower id)
  row of the same rollout is still ``pending`` (dead rows do not block), and its
  parent (``parent_key``), if any, is ``delivered``. A child whose parent is dead or
  missing goes dead too.
- Claiming is a short transaction that sets ``lease_owner``/``lease_until``
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` excludes
  other writers). Delivery happens outside any transaction. The result is written in
  a new transaction, only if this worker still holds the row.
- A crash between claiming and finishing leaves the row leased; once the lease
  expires another worker delivers it. Such a row may thus be delivered twice when
  the first attempt landed but its result was lost: deliverers look the key up
  before acting again (Slack metadata, Jira labels).
- ``TransientDeliveryError`` (and any unexpected exception) retries with exponential
  backoff (equal jitter, capped), never sooner than its ``retry_after``; after
  ``max_attempts`` attempts the row is dead. ``PermanentDeliveryError`` makes it
  dead at once. ``attempts`` counts every attempt, successful or not.
- Delivered and dead rows are recorded in the audit log (key and topic, never the
  payload).
- ``hook`` (optional, the crash harness's; see ``bot/cli/serve.py: step_hook``) is
  called with ``outbox.claimed`` once per row after the claim committed, and with
  ``outbox.returned`` after a delivery succeeded and before its result is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from workflows import audit
from workflows.db import Database, unit_of_work
from workflows.errors import (
    Conflict,
    NotFound,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from workflows.models import OutboxItem, OutboxState
from workflows.ports import Delivery

log = logging.getLogger("patchgate.outbox")

ERROR_LIMIT = 2000  # characters of an error message kept on the row


# --- producing ----------------------------------------------------------------------------


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    topic: str,
    payload: Mapping[str, Any],
    at: dt.datetime,
    rollout_id: int | None = None,
    parent_key: str | None = None,
) -> OutboxItem | None:
    """Add a row in the caller's transaction. Idempotent: an existing key changes nothing.

    Returns the new row, or None if a row with this key already exists (race-free:
    ``INSERT … ON CONFLICT (key) DO NOTHING`` on both backends).
    """
    values: dict[str, Any] = {
        "key": key,
        "topic": topic,
        "payload": dict(payload),
        "rollout_id": rollout_id,
        "parent_key": parent_key,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(OutboxItem)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[OutboxItem.key])
        .returning(OutboxItem.id)
    )
    new_id = (await session.execute(stmt)).scalar_one_or_none()
    if new_id is None:
        return None
    return await session.get(OutboxItem, new_id)


# --- delivering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryItem:
    """One outbox row as a deliverer sees it."""

    id: int
    key: str
    topic: str
    payload: Mapping[str, Any]
    rollout_id: int | None
    parent: Delivery | None  # the parent row's stored result, when it has a parent
    attempts: int  # attempts made before this one


class Deliverer(Protocol):
    async def deliver(self, item: DeliveryItem) -> Delivery:
        """Deliver, or raise TransientDeliveryError / PermanentDeliveryError.

        Any other exception counts as transient.
        """
        ...


def backoff_delay(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failure: exponential, equal jitter, capped."""
    ceiling = min(cap, base * 2.0 ** max(attempts - 1, 0))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def _short(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:ERROR_LIMIT]


class OutboxWorker:
    """Claims due rows, delivers them through the topic's deliverer, records the outcome.

    One pass claims up to ``limit`` rows (at most one per rollout, by the ordering rule)
    and delivers them concurrently. ``lease_seconds`` must exceed the longest a delivery
    can take (the deliverers' own timeouts), or another worker may take the row over.
    ``owner`` names this worker in leases (e.g. host:pid:epoch); ``clock`` gives "now".
    """

    def __init__(
        self,
        db: Database,
        deliverers: Mapping[str, Deliverer],
        *,
        clock: Callable[[], dt.datetime],
        owner: str,
        lease_seconds: float = 60,
        max_attempts: int = 12,
        base_backoff: float = 2.0,
        max_backoff: float = 600,
        rng: random.Random | None = None,
        hook: Callable[[str], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.db = db
        self.deliverers = dict(deliverers)
        self.clock = clock
        self.owner = owner
        self.lease = dt.timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.rng = rng or random.Random()
        self._hook = hook or (lambda step: None)
        self._unrouted_logged: set[str] = set()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Deliver until ``stop`` is set; sleeps ``interval`` when there is nothing to do."""
        while not stop.is_set():
            busy = False
            try:
                busy = await self.run_once() > 0
            except Exception:
                log.exception(
                    "outbox worker %s: pass failed; retrying in %ss", self.owner, interval
                )
            if busy:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def run_once(self, limit: int = 50) -> int:
        """One pass: claim up to ``limit`` rows, deliver them concurrently. Returns how many
        were delivered."""
        claimed = await self._claim(limit)
        if not claimed:
            return 0
        for _ in claimed:
            self._hook("outbox.claimed")
        outcomes = await asyncio.gather(
            *(self._deliver_one(item) for item in claimed), return_exceptions=True
        )
        delivered = 0
        for item, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                # Recording the outcome failed (database trouble): the row stays leased
                # and is tried again once its lease expires.
                log.error(
                    "outbox %s: could not record the delivery outcome",
                    item.key,
                    exc_info=outcome,
                )
            else:
                delivered += outcome
        return delivered

    # -- claiming ---------------------------------------------------------------------------

    async def _claim(self, limit: int) -> list[DeliveryItem]:
        now = self.clock()
        async with unit_of_work(self.db) as session:
            await self._log_unrouted(session)
            await self._kill_orphans(session, now)
            ids = await self._claimable_ids(session, now, limit)
            if not ids:
                return []
            await session.execute(
                sa.update(OutboxItem)
                .where(OutboxItem.id.in_(ids))
                .values(lease_owner=self.owner, lease_until=now + self.lease)
            )
            rows = (
                await session.scalars(
                    sa.select(OutboxItem)
                    .where(OutboxItem.id.in_(ids))
                    .order_by(OutboxItem.id)
                    .execution_options(populate_existing=True)
                )
            ).all()
            parent_keys = {r.parent_key for r in rows if r.parent_key is not None}
            parents: dict[str, dict[str, Any] | None] = {}
            if parent_keys:
                found = await session.execute(
                    sa.select(OutboxItem.key, OutboxItem.result).where(
                        OutboxItem.key.in_(parent_keys)
                    )
                )
                parents = {k: r for k, r in found}
            return [
                DeliveryItem(
                    id=r.id,
                    key=r.key,
                    topic=r.topic,
                    payload=dict(r.payload),
                    rollout_id=r.rollout_id,
                    parent=(
                        Delivery(dict(parents.get(r.parent_key) or {}))
                        if r.parent_key is not None
                        else None
                    ),
                    attempts=r.attempts,
                )
                for r in rows
            ]

    def _free(self, now: dt.datetime) -> sa.ColumnElement[bool]:
        return sa.or_(OutboxItem.lease_until.is_(None), OutboxItem.lease_until <= now)

    async def _claimable_ids(
        self, session: AsyncSession, now: dt.datetime, limit: int
    ) -> list[int]:
        if not self.deliverers:
            return []
        earlier = aliased(OutboxItem, name="earlier")
        parent = aliased(OutboxItem, name="parent")
        blocked_by_earlier = (
            sa.select(earlier.id)
            .where(
                earlier.rollout_id == OutboxItem.rollout_id,
                earlier.id < OutboxItem.id,
                earlier.state == OutboxState.PENDING.value,
            )
            .exists()
        )
        parent_delivered = (
            sa.select(parent.id)
            .where(
                parent.key == OutboxItem.parent_key,
                parent.state == OutboxState.DELIVERED.value,
            )
            .exists()
        )
        query = (
            sa.select(OutboxItem.id)
            .where(
                OutboxItem.state == OutboxState.PENDING.value,
                OutboxItem.next_attempt_at <= now,
                self._free(now),
                OutboxItem.topic.in_(sorted(self.deliverers)),
                ~blocked_by_earlier,
                sa.or_(OutboxItem.parent_key.is_(None), parent_delivered),
            )
            .order_by(OutboxItem.id)
            .limit(limit)
        )
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=OutboxItem)
        return list((await session.scalars(query)).all())

    async def _kill_orphans(self, session: AsyncSession, now: dt.datetime) -> None:
        """Pending children whose parent is dead or does not exist go dead too."""
        parent = aliased(OutboxItem, name="parent")
        query = (
            sa.select(OutboxItem, parent.state)
            .outerjoin(parent, parent.key == OutboxItem.parent_key)
            .where(
                OutboxItem.state == OutboxState.PENDING.value,
                OutboxItem.parent_key.is_not(None),
                self._free(now),
                sa.or_(parent.id.is_(None), parent.state == OutboxState.DEAD.value),
            )
            .order_by(OutboxItem.id)
        )
        if self.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=OutboxItem)
        for child, parent_state in await session.execute(query):
            why = "is dead" if parent_state is not None else "does not exist"
            await _mark_dead(
                session, child, error=f"parent outbox row {child.parent_key!r} {why}", at=now
            )

    async def _log_unrouted(self, session: AsyncSession) -> None:
        """Topics with pending rows but no deliverer stay pending; say so once per topic."""
        query = (
            sa.select(OutboxItem.topic)
            .where(OutboxItem.state == OutboxState.PENDING.value)
            .distinct()
        )
        if self.deliverers:
            query = query.where(OutboxItem.topic.not_in(sorted(self.deliverers)))
        for topic in (await session.scalars(query)).all():
            if topic not in self._unrouted_logged:
                self._unrouted_logged.add(topic)
                log.warning(
                    "outbox: no deliverer registered for topic %r; its rows stay pending", topic
                )

    # -- delivering and recording -------------------------------------------------------------

    async def _deliver_one(self, item: DeliveryItem) -> int:
        deliverer = self.deliverers[item.topic]
        try:
            delivery = await deliverer.deliver(item)
        except PermanentDeliveryError as exc:
            log.warning("outbox %s (%s): permanent failure: %s", item.key, item.topic, exc)
            await self._finish(item, error=_short(str(exc)), permanent=True)
            return 0
        except TransientDeliveryError as exc:
            log.info("outbox %s (%s): transient failure: %s", item.key, item.topic, exc)
            await self._finish(item, error=_short(str(exc)), retry_after=exc.retry_after)
            return 0
        except Exception as exc:
            log.warning(
                "outbox %s (%s): unexpected error, will retry", item.key, item.topic, exc_info=True
            )
            await self._finish(item, error=_short(exc))
            return 0
        self._hook("outbox.returned")
        return 1 if await self._finish(item, delivery=delivery) else 0

    async def _finish(
        self,
        item: DeliveryItem,
        *,
        delivery: Delivery | None = None,
        error: str | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> bool:
        """Record one attempt's outcome, if this worker still holds the row."""
        now = self.clock()
        async with unit_of_work(self.db) as session:
            # The audit lock before the row lock, the order of every other writer (the
            # engine appends its events, then touches outbox rows): the other way round
            # deadlocked on PostgreSQL and left the row leased.
            await audit.lock(session)
            row = await session.get(
                OutboxItem, item.id, with_for_update=True, populate_existing=True
            )
            if (
                row is None
                or row.state != OutboxState.PENDING.value
                or row.lease_owner != self.owner
            ):
                log.warning(
                    "outbox %s: lease lost before the result was recorded (another worker "
                    "took the row); the outcome of this attempt is dropped",
                    item.key,
                )
                return False
            row.attempts += 1
            row.lease_owner = None
            row.lease_until = None
            if delivery is not None:
                row.state = OutboxState.DELIVERED.value
                row.result = dict(delivery.data)
                row.delivered_at = now
                row.last_error = None
                await audit.append(
                    session,
                    kind="outbox.delivered",
                    data={
                        "outbox_id": row.id,
                        "key": row.key,
                        "topic": row.topic,
                        "attempts": row.attempts,
                    },
                    at=now,
                    rollout_id=row.rollout_id,
                )
                return True
            assert error is not None
            if permanent:
                await _mark_dead(session, row, error=error, at=now)
            elif row.attempts >= self.max_attempts:
                await _mark_dead(
                    session, row, error=f"gave up after {row.attempts} attempts: {error}", at=now
                )
            else:
                delay = backoff_delay(
                    row.attempts, base=self.base_backoff, cap=self.max_backoff, rng=self.rng
                )
                delay = max(delay, retry_after or 0.0)
                row.last_error = error
                row.next_attempt_at = now + dt.timedelta(seconds=delay)
            return False


async def _mark_dead(
    session: AsyncSession, row: OutboxItem, *, error: str, at: dt.datetime
) -> None:
    row.state = OutboxState.DEAD.value
    row.last_error = _short(error)
    row.lease_owner = None
    row.lease_until = None
    await audit.append(
        session,
        kind="outbox.dead",
        data={
            "outbox_id": row.id,
            "key": row.key,
            "topic": row.topic,
            "attempts": row.attempts,
            "error": row.last_error,
        },
        at=at,
        rollout_id=row.rollout_id,
    )


# --- operating --------------------------------------------------------------------------------


async def list_items(
    session: AsyncSession, *, state: str | None = None, limit: int = 100
) -> list[OutboxItem]:
    """Rows, newest first, optionally in one state."""
    query = sa.select(OutboxItem).order_by(OutboxItem.id.desc()).limit(limit)
    if state is not None:
        query = query.where(OutboxItem.state == OutboxState(state).value)
    return list((await session.scalars(query)).all())


async def retry(
    session: AsyncSession, *, item_id: int, at: dt.datetime, actor: str | None = None
) -> OutboxItem:
    """Revive a dead row: pending again, attempts reset, due at ``at``. Audited."""
    row = await session.get(OutboxItem, item_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"outbox row {item_id} does not exist")
    if row.state != OutboxState.DEAD.value:
        raise Conflict(f"outbox row {item_id} is {row.state}; only dead rows can be retried")
    row.state = OutboxState.PENDING.value
    row.attempts = 0
    row.next_attempt_at = at
    row.lease_owner = None
    row.lease_until = None
    await audit.append(
        session,
        kind="outbox.retried",
        data={"outbox_id": row.id, "key": row.key, "topic": row.topic},
        at=at,
        actor=actor,
        rollout_id=row.rollout_id,
    )
    return row


async def counts(session: AsyncSession) -> dict[str, int]:
    """Rows per state (every state present, zeros included), for /metrics and App Home."""
    result = {state.value: 0 for state in OutboxState}
    rows = await session.execute(
        sa.select(OutboxItem.state, sa.func.count()).group_by(OutboxItem.state)
    )
    for state, n in rows:
        result[state] = n
    return result
