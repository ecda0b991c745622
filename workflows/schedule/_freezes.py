"""Global change freezes: the operators' freeze and unfreeze, and the leader's side, which
holds active rollouts while one is on and releases only the holds a freeze set.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit, outbox
from workflows.errors import Conflict, Forbidden, InputError
from workflows.gates import Actor, has_power
from workflows.models import Freeze, Rollout
from workflows.notify import NoteAbout, rollout_note, texts
from workflows.requests import refuse
from workflows.schedule._rules import ACTOR, FREEZE_HOLDER, Tx
from workflows.states import ROLLOUT_ACTIVE_VALUES as ACTIVE


async def active_freeze(session: AsyncSession, *, now: dt.datetime) -> Freeze | None:
    return await session.scalar(
        sa.select(Freeze)
        .where(Freeze.lifted_at.is_(None), sa.or_(Freeze.until.is_(None), Freeze.until > now))
        .order_by(Freeze.id.desc())
        .limit(1)
    )


async def freeze(
    session: AsyncSession,
    *,
    actor: Actor,
    operators: frozenset[str],
    reason: str,
    until: dt.datetime | None,
    now: dt.datetime,
) -> Freeze | Forbidden:
    """Start a global change freeze (operators only, audited). Returns Forbidden if refused."""
    if not has_power(actor, operators):
        return await refuse(
            session,
            actor=actor,
            action="freeze",
            now=now,
            why=f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
        )
    if not reason.strip():
        raise InputError("a freeze needs a reason")
    if until is not None and until <= now:
        raise InputError(f"the freeze would end in the past ({until:%Y-%m-%d %H:%M} UTC)")
    row = Freeze(reason=reason.strip(), created_by=actor.user_id, started_at=now, until=until)
    await audit.add_audited(
        session,
        row,
        kind="freeze.started",
        at=now,
        actor=actor.user_id,
        data=lambda row: {
            "freeze_id": row.id,
            "reason": row.reason,
            "until": until.isoformat() if until else None,
            "source": actor.source,
        },
    )
    return row


async def unfreeze(
    session: AsyncSession, *, actor: Actor, operators: frozenset[str], now: dt.datetime
) -> list[Freeze] | Forbidden:
    """Lift every active freeze at once (operators only, audited)."""
    if not has_power(actor, operators):
        return await refuse(
            session,
            actor=actor,
            action="unfreeze",
            now=now,
            why=f"{actor.user_id} is not an operator (PATCHGATE_OPERATORS)",
        )
    rows = list(
        await session.scalars(
            sa.select(Freeze).where(
                Freeze.lifted_at.is_(None),
                sa.or_(Freeze.until.is_(None), Freeze.until > now),
            )
        )
    )
    if not rows:
        raise Conflict("there is no active freeze")
    for row in rows:
        row.lifted_at, row.lifted_by = now, actor.user_id
        await audit.append(
            session,
            kind="freeze.lifted",
            at=now,
            actor=actor.user_id,
            data={"freeze_id": row.id, "source": actor.source},
        )
    return rows


async def apply_freeze(tx: Tx, *, now: dt.datetime) -> bool:
    """Hold every active rollout while a freeze is on; release the holds a freeze set once
    none is."""
    async with tx("schedule.freeze") as session:
        current = await active_freeze(session, now=now)
        if current is not None:
            rollouts = list(
                await session.scalars(
                    sa.select(Rollout).where(
                        Rollout.state.in_(ACTIVE), Rollout.hold_reason.is_(None)
                    )
                )
            )
            for rollout in rollouts:
                await _hold(session, rollout=rollout, freeze_row=current, now=now)
        else:
            rollouts = list(
                await session.scalars(
                    sa.select(Rollout).where(
                        Rollout.state.in_(ACTIVE),
                        Rollout.hold_by == FREEZE_HOLDER,
                    )
                )
            )
            for rollout in rollouts:
                await _freeze_event(
                    session, rollout=rollout, kind="rollout.unfrozen", freeze_row=None, now=now
                )
                rollout.hold_reason = rollout.hold_by = rollout.held_at = None
    return bool(rollouts)


async def hold_for_freeze(tx: Tx, *, rollout_id: int, now: dt.datetime) -> bool:
    """Hold one rollout that a freeze holds nothing of yet, in a transaction of its own.

    The engine asks this before stepping a rollout that it saw unheld while a freeze is
    on: one started (committed) after this tick's :func:`apply_freeze` pass. Checked again
    under the rollout's row lock; True if the rollout is now held."""
    async with tx("schedule.freeze") as session:
        rollout = await session.get(Rollout, rollout_id, with_for_update=True)
        current = await active_freeze(session, now=now)
        if (
            current is None
            or rollout is None
            or rollout.state not in ACTIVE
            or rollout.hold_reason is not None
        ):
            return False
        await _hold(session, rollout=rollout, freeze_row=current, now=now)
        return True


async def _hold(
    session: AsyncSession, *, rollout: Rollout, freeze_row: Freeze, now: dt.datetime
) -> None:
    rollout.hold_reason = f"change freeze: {freeze_row.reason}"
    rollout.hold_by, rollout.held_at = FREEZE_HOLDER, now
    await _freeze_event(
        session, rollout=rollout, kind="rollout.frozen", freeze_row=freeze_row, now=now
    )


async def _freeze_event(
    session: AsyncSession,
    *,
    rollout: Rollout,
    kind: str,
    freeze_row: Freeze | None,
    now: dt.datetime,
) -> None:
    if freeze_row is not None:
        said = texts.mrkdwn(freeze_row.reason)
        text = f"Change freeze ({said}): no new batch starts until it is lifted"
        suffix = f"freeze:{freeze_row.id}:held"
        data: dict[str, Any] = {"freeze_id": freeze_row.id, "reason": freeze_row.reason}
    else:
        text = "Change freeze lifted: continuing"
        held = rollout.held_at.isoformat() if rollout.held_at else "?"
        suffix, data = f"freeze:lifted:{held}", {}
    await audit.append(session, kind=kind, at=now, actor=ACTOR, rollout_id=rollout.id, data=data)
    await outbox.enqueue(
        session, **rollout_note(rollout, suffix, text, now=now, kind=NoteAbout(kind))
    )
