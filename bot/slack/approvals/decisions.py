"""Votes from Slack, through the domain's ``workflows.gates.decide`` (as the CLI does)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.slack.deps import SlackDeps
from bot.slack.journal import claim
from integrations.slack import messages
from workflows import audit, notify, reports
from workflows.db import read_only, unit_of_work
from workflows.errors import NotFound
from workflows.gates import Actor, Outcome, decide, refuse_without_open_gate
from workflows.models import Decision, Gate, Ring, Rollout


async def decide_from_slack(
    deps: SlackDeps,
    *,
    gate_id: int,
    user_id: str,
    decision: Decision,
    shown_hash: str | None,
    reason: str | None,
    rollout_id: int | None = None,
    journal: str | None = None,
) -> Outcome | None:
    """Record the vote (or the audited refusal) and commit, before anyone is answered.

    ``rollout_id`` is the rollout a button named: a gate of another rollout is refused
    (a tampered value), audited like the domain's own refusals. ``journal``: the
    signature of the journaled request this is (``bot.slack.journal``), marked processed
    in the same transaction; None is returned if it was processed already."""
    actor = await deps.actor(user_id)
    async with deps.one_writer(), unit_of_work(deps.db) as session:
        if journal is not None and not await claim(session, journal, deps.clock.now()):
            return None
        if rollout_id is not None:  # a column read: the Gate row is loaded (locked) by decide
            owner = await session.scalar(sa.select(Gate.rollout_id).where(Gate.id == gate_id))
            why = None
            if owner is None:
                why = f"gate {gate_id} does not exist"
            elif owner != rollout_id:
                why = f"gate {gate_id} is not a gate of rollout #{rollout_id}"
            if why is not None:
                await audit.append(
                    session,
                    kind="gate.refused",
                    at=deps.clock.now(),
                    actor=user_id,
                    rollout_id=owner,
                    data={"gate_id": gate_id, "reason": why, "source": "slack"},
                )
                return Outcome(False, f"{decision.value} refused: {why}")
        return await decide(
            session,
            gate_id=gate_id,
            actor=actor,
            decision=decision,
            shown_hash=shown_hash,
            reason=reason,
            now=deps.clock.now(),
        )


async def refuse_from_slack_without_gate(
    deps: SlackDeps, *, rollout_id: int, user_id: str
) -> Outcome:
    """``/patch approve|reject N`` when rollout N has no open gate: audited, nothing else."""
    async with deps.one_writer(), unit_of_work(deps.db) as session:
        return await refuse_without_open_gate(
            session,
            rollout_id=rollout_id,
            actor=Actor(user_id=user_id, source="slack"),
            now=deps.clock.now(),
        )


async def readiness_message(deps: SlackDeps, gate_id: int) -> messages.Message:
    """The readiness message of an open gate, built from the database (for /patch approve)."""
    async with read_only(deps.db) as session:
        gate = await session.get(Gate, gate_id)
        if gate is None:
            raise NotFound(f"gate {gate_id} does not exist")
        rollout = await session.get(Rollout, gate.rollout_id)
        ring = await session.get(Ring, gate.ring_id)
        assert rollout is not None and ring is not None
        context = await reports.gate_context(session, rollout, ring)
    return messages.gate_opened(notify.gate_opened(rollout, gate, ring, context=context))
