"""What every Slack handler needs, built once by ``bot.app.create_app``."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from workflows.db import Database, read_only
from workflows.gates import Actor
from workflows.models import Rollout
from workflows.plan import LoadedPlan, PatchPlan, load_plans
from workflows.ports import Clock, Directory, Inventory
from workflows.requests import ACTIVE


@dataclass
class SlackDeps:
    settings: Settings
    db: Database
    directory: Directory
    clock: Clock
    inventory: Inventory
    client: AsyncWebClient

    async def actor(self, user_id: str) -> Actor:
        """Who is acting: the immutable user ID and the user groups it belongs to."""
        return Actor(
            user_id=user_id, groups=await self.directory.groups_of(user_id), source="slack"
        )

    def plans(self) -> dict[str, LoadedPlan]:
        return load_plans(self.settings.plans_dir)

    @property
    def operators(self) -> frozenset[str]:
        return self.settings.operator_ids


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
