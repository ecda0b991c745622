"""Polling Jira with JQL (``PATCHGATE_JIRA_POLL_INTERVAL``), for a Jira whose webhooks cannot
reach PatchGate: an interval job on the leader's scheduler reads the open change tickets'
comments and status changes (``integrations.jira_events.JiraPoller``) and decides their
votes as the webhook does. Both paths name an event by its Jira id, so a vote seen by
both is counted once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.jira.votes import JiraVotes
from integrations.jira_events import JiraPoller
from integrations.slack import DirectoryUnavailable
from workflows.errors import PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger("patchgate.jira")

POLL_JOB = "jira-poll"


@dataclass
class JiraPolling:
    votes: JiraVotes
    poller: JiraPoller
    interval: float

    async def poll_once(self) -> int:
        """One poll; returns the number of votes decided (counted or refused)."""
        try:
            polled = await self.poller.poll()
            outcomes = await self.votes.record(polled.events, issues=polled.requests)
        except (TransientDeliveryError, PermanentDeliveryError, DirectoryUnavailable) as exc:
            log.warning("Jira poll failed (next poll in %gs): %s", self.interval, exc)
            return 0
        return len(outcomes or [])

    def register_jobs(self, scheduler: AsyncIOScheduler) -> None:
        scheduler.add_job(
            self.poll_once,
            "interval",
            seconds=self.interval,
            id=POLL_JOB,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
        )
