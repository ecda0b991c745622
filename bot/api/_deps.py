"""What the API's handlers need, built by the composition root (``bot.app.build_api``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from bot.api._throttle import RefusalThrottle
from bot.backends import backend_catalog
from bot.settings import Settings
from workflows.db import Database
from workflows.errors import NotFound
from workflows.plans import LoadedPlan, PatchPlan, load_plans
from workflows.ports import Clock, Directory


class NoGroups:
    """The Directory when Slack is not configured: user-group membership cannot be read,
    so only user IDs listed directly (in plans, PATCHGATE_OPERATORS) give power."""

    async def groups_of(self, user_id: str) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True)
class ApiDeps:
    settings: Settings  # the SERVER's settings: operators and admins come from here only
    db: Database
    clock: Clock
    directory: Directory
    # Token guessing is held back per address (bot.api._throttle), per process.
    throttle: RefusalThrottle = field(default_factory=RefusalThrottle)

    @property
    def operators(self) -> frozenset[str]:
        return self.settings.operator_ids

    async def plans(self) -> dict[str, LoadedPlan]:
        """The plans directory, parsed off the event loop."""
        return await asyncio.to_thread(
            load_plans, self.settings.plans_dir, backend_catalog(self.settings)
        )

    async def plan(self, name: str) -> PatchPlan:
        plans = await self.plans()
        if name not in plans:
            known = ", ".join(sorted(plans)) or "none"
            raise NotFound(f"no plan named {name!r} in {self.settings.plans_dir} (plans: {known})")
        return plans[name].plan


DEPS = web.AppKey("patchgate_api", ApiDeps)
