"""The engine's host assessor with advisory data: the host's upgradable packages matched
against the configured feeds (OSV, KEV) and the host's own advisories (dnf/yum/zypper),
exactly as ``patchgate assess --refresh`` does; used for the refresh right before a
patch set is pinned (``workflows.assessment.HostAssessor``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial

from integrations.advisories.feeds import AdvisoryFeed
from integrations.advisories.records import records_from_host
from integrations.packages.versions import compare
from workflows.assessment import Finding, find_fixes
from workflows.ports import Executor, InventoryHost


class FeedAssessor:
    def __init__(self, executor: Executor, feed: AdvisoryFeed) -> None:
        self.executor = executor
        self.feed = feed

    async def assess(
        self,
        host: InventoryHost,
        *,
        os_id: str | None,
        os_version: str | None,
        package_manager: str | None,
        now: dt.datetime,
    ) -> Sequence[Finding]:
        upgradable = await self.executor.list_upgradable(host)
        own = []
        if package_manager not in (None, "apt"):  # apt hosts carry no advisory data
            own = records_from_host(await self.executor.host_advisories(host), host=host.name)
        return find_fixes(
            host,
            upgradable,
            [*self.feed.records, *own],
            os_id=os_id,
            os_version=os_version,
            compare=partial(compare, package_manager or "apt"),
            known_exploited=self.feed.known_exploited,
            now=now,
        )
