"""Votes from Jira: what a comment or a status change means, who cast it (a Slack user),
and the domain's decision (``workflows.tickets.vote_from_ticket`` → ``gates.decide``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from bot.jira.requests import RequestRules, read_request
from integrations.jira_events import JiraEvent, JiraIssue, JiraUser
from workflows import exceptions, tickets
from workflows.db import Database, read_only, unit_of_work
from workflows.gates import Actor, Outcome
from workflows.models import Decision, JiraEventSeen
from workflows.ports import Clock

log = logging.getLogger("patchgate.jira")

OWN_MARKER = "[patchgate:"  # PatchGate's own comments carry their outbox key


class People(Protocol):
    """Who a Jira user is in Slack (``integrations.slack.SlackDirectory`` has these)."""

    async def groups_of(self, user_id: str) -> frozenset[str]: ...

    async def user_by_email(self, email: str) -> str | None: ...


@dataclass
class VoteRules:
    approve_transitions: frozenset[str]  # lower-case transition or status names
    reject_transitions: frozenset[str]
    approve_command: str = "/approve"
    reject_command: str = "/reject"
    user_map: Mapping[str, str] = field(default_factory=dict)  # lower-case Jira id -> U…


def interpret(event: JiraEvent, rules: VoteRules) -> tickets.TicketVote | None:
    """The vote an event is, or None (an ordinary comment or status change)."""
    who = event.user.label
    if event.comment is not None:
        text = event.comment.strip()
        if not text or OWN_MARKER in text:
            return None
        first = text.splitlines()[0].strip()
        word, _, rest = first.partition(" ")
        if word.lower() == rules.approve_command.lower():
            shown = rest.split()[0] if rest.split() else None
            return tickets.TicketVote(
                event.issue_key, event.source, who, Decision.APPROVE, shown, None
            )
        if word.lower() == rules.reject_command.lower():
            reason = (rest.strip() + "\n" + "\n".join(text.splitlines()[1:])).strip()
            return tickets.TicketVote(
                event.issue_key, event.source, who, Decision.REJECT, None, reason or None
            )
        return None
    names = [n.lower() for n in (event.transition, event.to_status) if n]
    if any(n in rules.approve_transitions for n in names):
        return tickets.TicketVote(event.issue_key, event.source, who, Decision.APPROVE, None, None)
    if any(n in rules.reject_transitions for n in names):
        said = event.transition or event.to_status
        return tickets.TicketVote(
            event.issue_key,
            event.source,
            who,
            Decision.REJECT,
            None,
            f"rejected in Jira ({said}) by {who}",
        )
    return None


@dataclass
class JiraVotes:
    db: Database
    clock: Clock
    rules: VoteRules
    people: People | None = None  # None: no Slack; only the user map names voters
    requests: RequestRules | None = None  # exception requests from Jira, when configured

    async def slack_user(self, user: JiraUser) -> str | None:
        for name in user.ids():
            mapped = self.rules.user_map.get(name.lower())
            if mapped:
                return mapped
        if user.email and self.people is not None:
            return await self.people.user_by_email(user.email)
        return None

    async def actor(self, user: JiraUser) -> Actor | None:
        """The Slack user and groups behind a Jira user (raises the directory's
        DirectoryUnavailable when Slack cannot answer: nothing is recorded then)."""
        slack = await self.slack_user(user)
        if slack is None:
            return None
        groups = await self.people.groups_of(slack) if self.people is not None else frozenset()
        return Actor(user_id=slack, groups=groups, source="jira")

    async def record(
        self,
        events: Sequence[JiraEvent],
        *,
        delivery: str | None = None,
        issues: Sequence[JiraIssue] = (),
    ) -> list[Outcome] | None:
        """Decide the votes among ``events`` (and take the exception requests among
        ``issues``) in one transaction. ``delivery``: the webhook delivery's id, claimed
        first; None is returned if it was seen already (a replay)."""
        rules = self.requests
        wanted = [i for i in issues if rules is not None and i.issue_type == rules.issue_type]
        asked = [await read_request(i, rules, self.slack_user) for i in wanted if rules]
        votes = [(v, e) for e in events if (v := interpret(e, self.rules)) is not None]
        if votes:  # a poll reads old votes again: no Slack look-ups for those
            async with read_only(self.db) as session:
                seen = set(
                    await session.scalars(
                        sa.select(JiraEventSeen.source).where(
                            JiraEventSeen.source.in_([v.source for v, _ in votes])
                        )
                    )
                )
            votes = [(v, e) for v, e in votes if v.source not in seen]
        actors = [await self.actor(e.user) for _, e in votes]  # before the transaction
        outcomes: list[Outcome] = []
        async with unit_of_work(self.db) as session:
            now = self.clock.now()
            if delivery is not None and not await tickets.claim(session, source=delivery, now=now):
                return None
            for issue, (fields, requester) in zip(wanted, asked, strict=True):
                assert rules is not None
                await exceptions.open_request(
                    session,
                    issue_key=issue.key,
                    fields=fields,
                    requested_by=issue.reporter.label,
                    requester=requester,
                    now=now,
                    max_days=rules.max_days,
                )
            for (vote, _), actor in zip(votes, actors, strict=True):
                outcome = await tickets.vote_from_ticket(session, vote=vote, actor=actor, now=now)
                if outcome is None and rules is not None:
                    outcome = await exceptions.decide_request(
                        session,
                        vote=vote,
                        actor=actor,
                        operators=rules.operators,
                        max_days=rules.max_days,
                        now=now,
                    )
                if outcome is not None:
                    outcomes.append(outcome)
        for outcome in outcomes:
            log.info("jira vote: %s", outcome.message)
        return outcomes
