"""The Jira face (issue 23): votes cast on change tickets, received by webhook
(``bot.jira.webhook``) or by polling (``bot.jira.poll``), decided by the domain's rules
(``bot.jira.votes`` → ``workflows.tickets.vote_from_ticket`` → ``workflows.gates.decide``).

:func:`build_jira_face` is called by the composition root; it returns None when neither a
webhook secret nor a poll interval is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.jira.poll import JiraPolling
from bot.jira.requests import RequestRules
from bot.jira.votes import JiraVotes, People, VoteRules, interpret
from bot.jira.webhook import JiraWebhook
from bot.settings import Settings
from bot.settings_jira import split_names

if TYPE_CHECKING:
    from collections.abc import Mapping

    from workflows.db import Database
    from workflows.outbox import Deliverer
    from workflows.ports import Clock

__all__ = ["JiraFace", "JiraVotes", "People", "VoteRules", "build_jira_face", "interpret"]


@dataclass
class JiraFace:
    votes: JiraVotes
    webhook: JiraWebhook | None = None
    polling: JiraPolling | None = None

    def register(self, app: web.Application) -> None:
        if self.webhook is not None:
            self.webhook.register(app)

    def register_jobs(self, scheduler: AsyncIOScheduler) -> None:
        if self.polling is not None:
            self.polling.register_jobs(scheduler)


def vote_rules(settings: Settings) -> VoteRules:
    return VoteRules(
        approve_transitions=frozenset(
            n.lower() for n in split_names(settings.jira_approve_transitions)
        ),
        reject_transitions=frozenset(
            n.lower() for n in split_names(settings.jira_reject_transitions)
        ),
        approve_command=settings.jira_approve_command,
        reject_command=settings.jira_reject_command,
        user_map=settings.jira_user_pairs,
    )


def build_jira_face(
    settings: Settings, *, db: Database, clock: Clock, deliverers: Mapping[str, Deliverer]
) -> JiraFace | None:
    """The webhook route and the polling job, as the settings ask (``bot.app`` passes
    the runtime's database, clock and outbox deliverers)."""
    secret = settings.jira_webhook_secret
    polling = settings.jira_poll_interval > 0 and bool(settings.jira_url)
    if secret is None and not polling:
        return None
    people: People | None = None
    if settings.slack_bot_token is not None:
        from bot.slack.deps import CandidateGroups
        from integrations.slack import SlackDirectory, make_client

        client = make_client(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        people = SlackDirectory(client, CandidateGroups(settings, db))
    votes = JiraVotes(db=db, clock=clock, rules=vote_rules(settings), people=people)
    if settings.jira_exception_issue_type:
        votes.requests = RequestRules(
            issue_type=settings.jira_exception_issue_type,
            fields=settings.jira_exception_field_map,
            operators=settings.operator_ids,
            max_days=settings.exception_max_days,
        )
    face = JiraFace(votes=votes)
    if secret is not None:
        face.webhook = JiraWebhook(
            votes, secret=secret.get_secret_value(), max_age=settings.jira_webhook_max_age
        )
    if polling:
        from integrations.jira import JiraTicketer
        from integrations.jira_events import JiraPoller
        from workflows.tickets import TOPIC

        ticketer = deliverers.get(TOPIC)
        if isinstance(ticketer, JiraTicketer):
            face.polling = JiraPolling(
                votes,
                JiraPoller(ticketer, request_type=settings.jira_exception_issue_type),
                interval=settings.jira_poll_interval,
            )
    return face
