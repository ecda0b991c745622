"""The built-in subcommands: help, status, plans, run, pause/resume/abort,
approve, reject. Later issues add theirs in new modules with the same ``register``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.slack import texts
from bot.slack.approvals.decisions import (
    decide_from_slack,
    readiness_message,
    refuse_from_slack_without_gate,
)
from bot.slack.commands import schedule
from bot.slack.commands.discovery import Hosts as Hosts  # /patch hosts lives in discovery
from bot.slack.commands.discovery import gaps_section
from bot.slack.commands.registry import (
    Invocation,
    Registry,
    Reply,
    Subcommand,
    UsageError,
    ephemeral,
    expect,
    rollout_id,
)
from bot.slack.deps import SlackDeps
from bot.slack.rollouts.blocks import rollout_detail, rollout_lines
from workflows.db import read_only, unit_of_work
from workflows.engine import layout_rollout, render_layout
from workflows.errors import Conflict, Forbidden, NotFound
from workflows.models import Decision, Gate, Host, RequestKind, Rollout
from workflows.requests import control_rollout, start_rollout
from workflows.states import ROLLOUT_TERMINAL

# --- help ---------------------------------------------------------------------------------


def make_help(registry: Registry) -> Subcommand:
    def parse(args: Sequence[str]) -> None:
        expect(args, "help", at_least=0, at_most=1)

    async def run(deps: SlackDeps, who: Invocation, _: None) -> Reply:
        lines = ["*PatchGate* — `/patch` subcommands:"]
        lines += [f"• `/patch {s.usage}` — {s.summary}" for s in registry]
        return ephemeral("\n".join(lines))

    return Subcommand("help", "help", "this list", parse, run)


# --- status -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    rollout_id: int | None


STATUS_USAGE = "status [ROLLOUT]"


def parse_status(args: Sequence[str]) -> Status:
    expect(args, STATUS_USAGE, at_least=0, at_most=1)
    return Status(rollout_id(args[0], STATUS_USAGE) if args else None)


async def run_status(deps: SlackDeps, who: Invocation, cmd: Status) -> Reply:
    async with read_only(deps.db) as session:
        if cmd.rollout_id is not None:
            text = await rollout_detail(session, cmd.rollout_id)
            if text is None:
                return ephemeral(texts.no_rollout(cmd.rollout_id))
            return ephemeral(text)
        # One query says whether anything shown changed since the last answer: every
        # write to rollouts and hosts goes through the ORM, whose onupdate sets updated_at.
        changes = (await session.execute(_CHANGES)).one()
        rollouts_now, hosts_now = tuple(changes[:2]), tuple(changes[2:])
        cached = deps.status_lines
        if cached is not None and cached[0] == rollouts_now:
            lines = cached[1]
        else:
            lines = await _rollout_sections(session)
            deps.status_lines = (rollouts_now, lines)
    return ephemeral(lines + "\n" + await gaps_section(deps, hosts_now))


_CHANGES = sa.select(
    sa.select(sa.func.count(Rollout.id)).scalar_subquery(),
    sa.select(sa.func.max(Rollout.updated_at)).scalar_subquery(),
    sa.select(sa.func.count(Host.id)).scalar_subquery(),  # = bot.slack.fleet.rows_key
    sa.select(sa.func.max(Host.updated_at)).scalar_subquery(),
)


async def _rollout_sections(session: AsyncSession) -> str:
    """The active and the recently finished rollouts, a line each."""
    terminal = [s.value for s in ROLLOUT_TERMINAL]
    # the columns a line shows, not whole rows (each carries its plan snapshot)
    columns = (
        Rollout.id,
        Rollout.plan_name,
        Rollout.state,
        Rollout.hold_reason,
        Rollout.emergency,
        Rollout.emergency_cve,
    )
    active = (
        await session.execute(
            sa.select(*columns).where(Rollout.state.not_in(terminal)).order_by(Rollout.id)
        )
    ).all()
    recent = (
        await session.execute(
            sa.select(*columns)
            .where(Rollout.state.in_(terminal))
            .order_by(Rollout.id.desc())
            .limit(5)
        )
    ).all()
    parts = [texts.ACTIVE_ROLLOUTS, rollout_lines(active) or texts.NONE]
    parts += [texts.RECENTLY_FINISHED, rollout_lines(recent) or texts.NONE]
    return "\n".join(parts)


# --- plans ------------------------------------------------------------------------------


def parse_plans(args: Sequence[str]) -> None:
    expect(args, "plans", at_least=0, at_most=0)


async def run_plans(deps: SlackDeps, who: Invocation, _: None) -> Reply:
    plans = await asyncio.to_thread(deps.plans)
    if not plans:
        return ephemeral(texts.NO_PLANS)
    lines = ["*Plans*"]
    for name, loaded in sorted(plans.items()):
        rings = " → ".join(r.name for r in loaded.plan.rings)
        lines.append(texts.plan_line(name, loaded.plan.description, rings))
    return ephemeral("\n".join(lines))


# --- run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    plan: str
    dry_run: bool
    at: str | None = None  # a one-off run at this time (bot/slack/commands/schedule.py)


RUN_USAGE = "run PLAN [--dry-run] [--at TIME]"


def parse_run(args: Sequence[str]) -> Run:
    at: str | None = None
    if "--at" in args:
        i = list(args).index("--at")
        words = list(args[i + 1 :])
        end = next((n for n, w in enumerate(words) if w.startswith("--")), len(words))
        if end == 0:
            raise UsageError(texts.TIME_MISSING_AFTER_AT, usage=RUN_USAGE)
        at = " ".join(words[:end])
        args = [*args[:i], *words[end:]]
    flags = [a for a in args if a.startswith("-")]
    names = [a for a in args if not a.startswith("-")]
    unknown = [f for f in flags if f != "--dry-run"]
    if unknown:
        raise UsageError(texts.unknown_option(unknown[0]), usage=RUN_USAGE)
    if at is not None and flags:
        raise UsageError(texts.DRY_RUN_AND_AT, usage=RUN_USAGE)
    expect(names, RUN_USAGE, at_least=1, at_most=1)
    return Run(names[0], "--dry-run" in flags, at)


async def run_run(deps: SlackDeps, who: Invocation, cmd: Run) -> Reply:
    if cmd.at is not None:
        return await schedule.run_at(deps, who, plan_name=cmd.plan, at=cmd.at, usage=RUN_USAGE)
    plans = await asyncio.to_thread(deps.plans)
    if cmd.plan not in plans:
        known = ", ".join(sorted(plans)) or texts.NONE
        return ephemeral(texts.no_plan(cmd.plan, known))
    plan = plans[cmd.plan].plan
    if cmd.dry_run:
        layout = layout_rollout(plan, await asyncio.to_thread(deps.inventory.hosts))
        return ephemeral(texts.dry_run(plan.name, render_layout(layout)))
    actor = await deps.actor(who.user_id)
    try:
        async with unit_of_work(deps.db) as session:
            result = await start_rollout(
                session, plan=plan, actor=actor, operators=deps.operators, now=deps.clock.now()
            )
            rollout_number = None if isinstance(result, Forbidden) else result.id
    except Conflict as exc:
        return ephemeral(texts.no_entry(exc))
    if rollout_number is None:
        return ephemeral(texts.no_entry(result))
    return ephemeral(texts.rollout_scheduled(rollout_number, plan.name))


# --- pause / resume / abort ---------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    kind: RequestKind
    rollout_id: int
    reason: str | None


def make_control(kind: RequestKind, summary: str) -> Subcommand:
    usage = f"{kind.value} ROLLOUT [REASON]"

    def parse(args: Sequence[str]) -> Control:
        expect(args, usage, at_least=1, at_most=None)
        return Control(kind, rollout_id(args[0], usage), " ".join(args[1:]) or None)

    async def run(deps: SlackDeps, who: Invocation, cmd: Control) -> Reply:
        actor = await deps.actor(who.user_id)
        try:
            async with unit_of_work(deps.db) as session:
                result = await control_rollout(
                    session,
                    rollout_id=cmd.rollout_id,
                    kind=cmd.kind,
                    actor=actor,
                    operators=deps.operators,
                    now=deps.clock.now(),
                    reason=cmd.reason,
                )
                refused = isinstance(result, Forbidden)
        except (NotFound, Conflict) as exc:
            return ephemeral(texts.no_entry(exc))
        if refused:
            return ephemeral(texts.no_entry(result))
        return ephemeral(texts.control_queued(cmd.kind.value, cmd.rollout_id))

    return Subcommand(kind.value, usage, summary, parse, run)


# --- approve / reject -----------------------------------------------------------------------


@dataclass(frozen=True)
class Decide:
    decision: Decision
    rollout_id: int
    argument: str | None  # the hash shown (approve) or the reason (reject)


APPROVE_USAGE = "approve ROLLOUT [HASH]"
REJECT_USAGE = "reject ROLLOUT REASON"


def parse_approve(args: Sequence[str]) -> Decide:
    expect(args, APPROVE_USAGE, at_least=1, at_most=2)
    return Decide(
        Decision.APPROVE, rollout_id(args[0], APPROVE_USAGE), args[1] if len(args) > 1 else None
    )


def parse_reject(args: Sequence[str]) -> Decide:
    if not args:
        raise UsageError(texts.REJECTION_NEEDS_REASON_USAGE, usage=REJECT_USAGE)
    # A missing reason is the domain's refusal (audited with the person), not a usage error.
    return Decide(Decision.REJECT, rollout_id(args[0], REJECT_USAGE), " ".join(args[1:]) or None)


async def run_decide(deps: SlackDeps, who: Invocation, cmd: Decide) -> Reply:
    async with read_only(deps.db) as session:
        gate = await session.scalar(
            sa.select(Gate).where(Gate.rollout_id == cmd.rollout_id, Gate.state == "open")
        )
    if gate is None:  # no open gate, or no such rollout: the domain's audited refusal
        refused = await refuse_from_slack_without_gate(
            deps, rollout_id=cmd.rollout_id, user_id=who.user_id
        )
        return ephemeral(texts.no_entry(f"{refused.message.capitalize()}."))
    if cmd.decision == Decision.APPROVE and cmd.argument is None:
        # Show what would be approved, with the buttons: the approval binds to it.
        message: dict[str, Any] = await readiness_message(deps, gate.id)
        return {**message, "response_type": "ephemeral"}
    outcome = await decide_from_slack(
        deps,
        gate_id=gate.id,
        user_id=who.user_id,
        decision=cmd.decision,
        shown_hash=cmd.argument if cmd.decision == Decision.APPROVE else None,
        reason=cmd.argument if cmd.decision == Decision.REJECT else None,
    )
    assert outcome is not None  # not journaled: None only for a processed journal row
    text = texts.decided(outcome.accepted, outcome.message)
    if cmd.decision == Decision.REJECT and cmd.argument is None:
        text += texts.usage_line(REJECT_USAGE)
    return ephemeral(text)


def register(registry: Registry) -> None:
    registry.add(make_help(registry))
    registry.add(
        Subcommand(
            "status",
            STATUS_USAGE,
            "active and recent rollouts, or one in detail",
            parse_status,
            run_status,
        )
    )
    registry.add(Subcommand("plans", "plans", "the plans PatchGate knows", parse_plans, run_plans))
    registry.add(
        Subcommand(
            "run",
            RUN_USAGE,
            "start a rollout of a plan, now or at a time (operators)",
            parse_run,
            run_run,
        )
    )
    registry.add(
        make_control(RequestKind.PAUSE, "hold a rollout at the next batch boundary (operators)")
    )
    registry.add(make_control(RequestKind.RESUME, "lift a rollout's hold (operators)"))
    registry.add(
        make_control(RequestKind.ABORT, "stop a rollout at the next batch boundary (operators)")
    )
    registry.add(
        Subcommand(
            "approve", APPROVE_USAGE, "approve a rollout's open gate", parse_approve, run_decide
        )
    )
    registry.add(
        Subcommand(
            "reject",
            REJECT_USAGE,
            "reject a rollout's open gate, with a reason",
            parse_reject,
            run_decide,
        )
    )
