"""``app_home_opened``: publish the viewer's Home (``views.publish`` directly)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.commands.discovery import gaps_section
from bot.slack.deps import SlackDeps
from bot.slack.home.blocks import home_view
from bot.slack.home.ids import HomeEvent
from bot.slack.later import defer
from bot.slack.rollouts.blocks import emergency_tag
from workflows.db import read_only
from workflows.gates import has_power
from workflows.models import Gate, HostRun, OutboxItem, OutboxState, Ring, Rollout
from workflows.plans import PatchPlan
from workflows.states import ROLLOUT_SETTLED_VALUES

COVERAGE_DAYS = 30


async def build_home(deps: SlackDeps, user_id: str) -> dict[str, Any]:
    actor = await deps.actor(user_id)
    now = deps.clock.now()
    terminal = list(ROLLOUT_SETTLED_VALUES)
    async with read_only(deps.db) as session:
        open_rollouts = list(
            await session.scalars(
                sa.select(Rollout).where(Rollout.state.not_in(terminal)).order_by(Rollout.id)
            )
        )
        finished = list(
            await session.scalars(
                sa.select(Rollout)
                .where(Rollout.state.in_(terminal))
                .order_by(Rollout.id.desc())
                .limit(5)
            )
        )
        waiting = []
        gates = await session.execute(
            sa.select(Gate, Ring, Rollout)
            .join(Ring, Ring.id == Gate.ring_id)
            .join(Rollout, Rollout.id == Gate.rollout_id)
            .where(Gate.state == "open", Gate.kind == "approval")
        )
        for _gate, ring, rollout in gates.all():
            spec = PatchPlan.model_validate(rollout.plan_snapshot).rings[ring.position].gate
            listed = frozenset(
                (spec.approvers.users + spec.approvers.groups) if spec.approvers else []
            )
            if has_power(actor, listed):
                waiting.append(
                    f"• {emergency_tag(rollout)}rollout #{rollout.id} `{rollout.plan_name}`: "
                    f"ring {ring.name}"
                )
        since = now - dt.timedelta(days=COVERAGE_DAYS)
        patched = (
            await session.scalar(
                sa.select(sa.func.count(sa.distinct(HostRun.host_name))).where(
                    HostRun.state == "healthy", HostRun.finished_at >= since
                )
            )
            or 0
        )
        dead = list(
            await session.scalars(
                sa.select(OutboxItem)
                .where(OutboxItem.state == OutboxState.DEAD.value)
                .order_by(OutboxItem.id.desc())
                .limit(10)
            )
        )
    total = len((await deps.fleet()).hosts)
    gaps = await gaps_section(deps)
    return home_view(
        open_rollouts=open_rollouts,
        waiting=waiting,
        finished=finished,
        coverage=(patched, total, COVERAGE_DAYS),
        dead=dead,
        gaps=gaps,
    )


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def opened(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        # after the event's ack (Bolt acks it when this listener returns)
        defer(deps, body, lambda: publish(client, user))

    async def publish(client: AsyncWebClient, user: str) -> None:
        await client.views_publish(user_id=user, view=await build_home(deps, user))

    app.event(HomeEvent.OPENED.value)(opened)
