"""Requests acted on after their ack: journaled before it, processed exactly once.

An Approve click is acked as soon as the signed request itself is durable: the replay
guard's batched insert (``bot.slack.security.ReplayGuard``) writes the request's
``kind`` and signed ``body`` into its ``slack_seen_signatures`` row, committed before
the ack. The Bolt middleware that checks every HTTP request (``bot.slack.guard``) then
answers 200 itself (nothing in a listener's answer depends on the click) and
:meth:`Journal.accept` processes it right after the ack in the same process (the gate
decision with its audit and outbox rows); the transaction that records it also sets the
row's ``processed_at`` (:func:`claim`), so it happens once. A row left unprocessed (the
process died between the ack and the decision, or the decision's transaction failed) is
processed by :meth:`Journal.sweep`: when ``serve`` starts, and then periodically by the
leader. Two processes that try the same row both run :func:`claim` in their write
transaction: one updates the row, the other finds it processed and does nothing.

A row whose processing keeps failing (a payload its processor cannot take) is given up
after ``MAX_TRIES`` failed attempts: ``tries`` counts them in their own transaction, and
the last one marks the row processed with a ``slack.journal.dead`` audit event (its kind
and the error), instead of every sweep retrying it forever. A failure to count (the
database away) counts nothing: an outage does not kill clicks.

The person learns the outcome from ``chat.postEphemeral`` after the decision, as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.slack.deps import SlackDeps
from integrations.slack.directory import DirectoryUnavailable
from integrations.slack.messages import GateAction
from workflows import audit
from workflows.db import read_only, unit_of_work
from workflows.models import SeenSignature

log = logging.getLogger("patchgate.slack")

APPROVE = "gate.approve"
SWEEP_EVERY = 30.0  # seconds, on the leader
SWEEP_AFTER = dt.timedelta(seconds=30)  # a row this old was not processed after its ack
SWEEP_BATCH = 100
MAX_TRIES = 5  # failed attempts before a journaled request is given up (audited)
DEAD = "slack.journal.dead"
# Failures that say nothing about the request itself: never counted towards MAX_TRIES.
OUTAGES = (DirectoryUnavailable, SQLAlchemyError, OSError, TimeoutError)

TABLE = cast(sa.Table, SeenSignature.__table__)

Processor = Callable[[SlackDeps, str, dict[str, Any]], Awaitable[None]]


def payload_of(body: bytes | str) -> dict[str, Any] | None:
    """The JSON ``payload=`` of a form-encoded interaction, or None."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        values = urllib.parse.parse_qs(text, strict_parsing=True).get("payload")
        payload = json.loads(values[0]) if values else None
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


@dataclass(frozen=True)
class Journaled:
    """A request durable in the journal, answered by ``bot.slack.guard`` and processed
    after its ack."""

    signature: str
    kind: str


def classify(payload: dict[str, Any]) -> str | None:
    """The journal kind of a request (its body as Bolt parsed it) to act on after its
    ack, or None (handled by a listener before its ack)."""
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return None
    return APPROVE if actions[0].get("action_id") == GateAction.APPROVE.value else None


async def claim(session: AsyncSession, signature: str, now: dt.datetime) -> bool:
    """Mark the journaled request processed, in the caller's write transaction.

    False if it was processed already (by this or another process): do nothing then.
    On PostgreSQL a concurrent claimer waits on the row lock and then finds it done; on
    SQLite write transactions are serial (``BEGIN IMMEDIATE``)."""
    result = await session.execute(
        sa.update(TABLE)
        .where(TABLE.c.signature == signature, TABLE.c.processed_at.is_(None))
        .values(processed_at=now)
    )
    return cast(int, getattr(result, "rowcount", 0)) == 1


class Journal:
    """Processors by kind, and the sweep of rows left unprocessed."""

    # this process's journaled requests being processed after their ack (tests wait for
    # them or cancel them, as a process dying after its acks would)
    tasks: ClassVar[set[asyncio.Task[None]]] = set()

    def __init__(self, deps: SlackDeps) -> None:
        self.deps = deps
        self.processors: dict[str, Processor] = {}

    def accept(self, journaled: Journaled, payload: dict[str, Any]) -> None:
        """Process a request journaled and acked just now (``payload``: its body as Bolt
        parsed it), once the acks still waiting have gone (``SlackDeps.after_ack``). If
        that fails the row stays unprocessed and the sweep tries it again."""
        task = asyncio.create_task(self._after_ack(journaled, payload), name="slack-journaled")
        Journal.tasks.add(task)
        task.add_done_callback(Journal.tasks.discard)

    async def _after_ack(self, journaled: Journaled, payload: dict[str, Any]) -> None:
        try:
            await self.deps.after_ack(
                lambda: self.process(journaled.signature, journaled.kind, payload)
            )
        except Exception as exc:
            log.exception(
                "journaled Slack request (%s) failed after its ack; the sweep retries it",
                journaled.kind,
            )
            await self.failed(journaled.signature, journaled.kind, exc)

    def register(self, kind: str, processor: Processor) -> None:
        self.processors[kind] = processor

    async def process(self, signature: str, kind: str, payload: dict[str, Any]) -> None:
        await self.processors[kind](self.deps, signature, payload)

    async def sweep(self, *, older_than: dt.timedelta = SWEEP_AFTER) -> int:
        """Process journaled rows still unprocessed ``older_than`` after they arrived.
        Returns how many were tried. A row that fails stays for the next sweep."""
        cutoff = self.deps.clock.now() - older_than
        async with read_only(self.deps.db) as session:
            rows = (
                await session.execute(
                    sa.select(TABLE.c.signature, TABLE.c.kind, TABLE.c.body)
                    .where(
                        TABLE.c.kind.in_(list(self.processors)),
                        TABLE.c.processed_at.is_(None),
                        TABLE.c.seen_at <= cutoff,
                    )
                    .order_by(TABLE.c.seen_at)
                    .limit(SWEEP_BATCH)
                )
            ).all()
        for signature, kind, body in rows:
            payload = payload_of(body or "")
            if payload is None:  # cannot happen for a row classify() wrote; do not loop on it
                log.error("journaled Slack request %s… is unreadable; skipped", signature[:12])
                async with self.deps.one_writer(), self.deps.db.engine.begin() as conn:
                    await conn.execute(
                        sa.update(TABLE)
                        .where(TABLE.c.signature == signature)
                        .values(processed_at=self.deps.clock.now())
                    )
                continue
            log.info("processing a journaled Slack request (%s) left unprocessed", kind)
            try:
                await self.process(signature, kind, payload)
            except Exception as exc:
                log.exception("journaled Slack request (%s) failed; retried later", kind)
                await self.failed(signature, kind, exc)
        return len(rows)

    async def failed(self, signature: str, kind: str, error: BaseException) -> None:
        """Count a failed attempt; the ``MAX_TRIES``-th gives the row up, audited. An
        outage (Slack's user groups unreadable, the database away) is not the request's
        fault and counts nothing: the click waits for the sweep however long it lasts."""
        if isinstance(error, OUTAGES):
            return
        now = self.deps.clock.now()
        try:
            async with self.deps.one_writer(), unit_of_work(self.deps.db) as session:
                tries = await session.scalar(
                    sa.update(TABLE)
                    .where(TABLE.c.signature == signature, TABLE.c.processed_at.is_(None))
                    .values(tries=TABLE.c.tries + 1)
                    .returning(TABLE.c.tries)
                )
                if tries is None or tries < MAX_TRIES:
                    return
                await session.execute(
                    sa.update(TABLE).where(TABLE.c.signature == signature).values(processed_at=now)
                )
                detail = f"{type(error).__name__}: {error}"[:300]
                data = {"kind": kind, "error": detail, "tries": tries, "source": "slack"}
                await audit.append(session, kind=DEAD, data=data, at=now)
        except (SQLAlchemyError, OSError) as exc:  # the database away: not counted
            log.warning("could not count a failed journaled Slack request: %s", exc)
            return
        log.error("journaled Slack request (%s) given up after %d tries: %s", kind, tries, detail)

    async def run(self, is_leader: Callable[[], bool], *, every: float = SWEEP_EVERY) -> None:
        """Sweep once at start (any process: rows a crashed process left), then every
        ``every`` seconds while this process leads."""
        first = True
        while True:
            if first or is_leader():
                try:
                    await self.sweep(older_than=dt.timedelta(0) if first else SWEEP_AFTER)
                except Exception as exc:  # database away: try again next time
                    log.warning("journal sweep failed: %s", exc)
            first = False
            await asyncio.sleep(every)
