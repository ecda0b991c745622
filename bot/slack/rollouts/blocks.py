"""Rollout summaries for /patch status and App Home."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from integrations.slack.messages import STATE_ICONS
from workflows.models import Gate, HostRun, Ring, Rollout
from workflows.notify import texts


class RolloutLine(Protocol):
    """What a rollout's one-line summary shows (a ``Rollout`` or a row of those columns)."""

    @property
    def id(self) -> int: ...
    @property
    def plan_name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def hold_reason(self) -> str | None: ...
    @property
    def emergency(self) -> bool: ...
    @property
    def emergency_cve(self) -> str | None: ...


def emergency_tag(r: RolloutLine) -> str:
    """``:rotating_light: *EMERGENCY* CVE-…`` before an emergency rollout's summary."""
    if not r.emergency:
        return ""
    return f":rotating_light: *EMERGENCY* {r.emergency_cve or ''} ".replace("  ", " ")


def rollout_line(r: RolloutLine) -> str:
    hold = f" — held: {texts.mrkdwn(r.hold_reason)}" if r.hold_reason else ""
    icon = STATE_ICONS.get(r.state, "")
    return f"{icon} {emergency_tag(r)}#{r.id} `{r.plan_name}` *{r.state}*{hold}"


def rollout_lines(rollouts: Sequence[RolloutLine]) -> str:
    return "\n".join(rollout_line(r) for r in rollouts)


async def rollout_detail(session: AsyncSession, rollout_id: int) -> str | None:
    rollout = await session.get(Rollout, rollout_id)
    if rollout is None:
        return None
    lines = [rollout_line(rollout), f"requested by <@{rollout.requested_by}>"]
    if rollout.reason:
        lines.append(texts.mrkdwn(rollout.reason))
    if rollout.patchset_hash:
        lines.append(f"patch set `{rollout.patchset_hash[:12]}`")
    rings = await session.scalars(
        sa.select(Ring).where(Ring.rollout_id == rollout_id).order_by(Ring.position)
    )
    for ring in rings:
        counts = dict(
            (
                await session.execute(
                    sa.select(HostRun.state, sa.func.count())
                    .where(HostRun.ring_id == ring.id)
                    .group_by(HostRun.state)
                )
            ).all()
        )
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no hosts"
        line = f"• ring *{ring.name}*: {ring.state} ({shown})"
        gate = await session.scalar(sa.select(Gate).where(Gate.ring_id == ring.id))
        if gate is not None:
            line += f"; gate {gate.id} {gate.state}"
        lines.append(line)
    return "\n".join(lines)
