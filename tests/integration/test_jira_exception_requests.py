"""Exceptions requested in Jira (issue 23): an issue of the configured type with its custom
fields becomes a request; an operator's approval on the issue grants it; its revocation
and its lapse are told on the same issue. The real ``jira`` client against the emulator
(Cloud and Server), webhooks over real HTTP and the JQL poll, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from bot.jira.requests import RequestRules
from tests.enginekit import APPROVER_1, APPROVER_2, OPERATORS
from tests.fakes.jira_api import FakeIssue, JiraEmulator
from tests.integration.test_jira_votes import Stack
from tests.integration.test_jira_votes import jira as jira  # the fixtures
from tests.integration.test_jira_votes import slack as slack
from tests.integration.test_jira_votes import stack as stack
from workflows import exceptions
from workflows.db import read_only, unit_of_work
from workflows.gates import Actor
from workflows.models import Event, ExceptionRequest, HostException

TYPE = "Patch Exception"
FIELDS = {
    "host": "customfield_10101",
    "package": "customfield_10102",
    "cve": "customfield_10103",
    "owner": "customfield_10104",
    "reason": "description",
    "expires": "duedate",
}


def accept_requests(stack: Stack) -> None:
    stack.votes.requests = RequestRules(
        issue_type=TYPE, fields=FIELDS, operators=OPERATORS, max_days=30
    )
    stack.polling.poller.request_jql = (
        f'issuetype = "{TYPE}" AND statusCategory != Done ORDER BY created ASC'
    )


def request_fields(jira: JiraEmulator, **overrides: Any) -> dict[str, Any]:
    fields = {
        "customfield_10101": "prod-01",
        "customfield_10102": {"value": "openssl"},  # a select list
        "customfield_10104": jira.people["alice"].json(jira.deployment),  # a user picker
        "description": "vendor certification of the new openssl is pending",
        "duedate": "2026-01-20",
    }
    fields.update(overrides)
    return fields


async def ask(jira: JiraEmulator, person: str = "bob", **overrides: Any) -> FakeIssue:
    return await jira.create_as(
        person,
        issue_type=TYPE,
        summary="Hold openssl on prod-01",
        fields=request_fields(jira, **overrides),
    )


def said(issue: FakeIssue) -> str:
    return "\n".join(c["body"] for c in issue.comments)


async def requests(stack: Stack) -> list[tuple[str, str]]:
    async with read_only(stack.db) as session:
        rows = await session.execute(
            sa.select(ExceptionRequest.issue_key, ExceptionRequest.state).order_by(
                ExceptionRequest.id
            )
        )
        return [(k, s) for k, s in rows.all()]


async def active(stack: Stack) -> list[HostException]:
    async with read_only(stack.db) as session:
        return list(
            await session.scalars(
                sa.select(HostException).where(HostException.revoked_at.is_(None))
            )
        )


async def test_a_request_made_in_jira_is_granted_by_an_operator_and_its_revocation_told(
    stack: Stack, jira: JiraEmulator
) -> None:
    accept_requests(stack)
    issue = await ask(jira, person="rita")  # rita asks (found in Slack by her e-mail)
    assert json.loads(jira.deliveries[-1].answer) == {"counted": 0, "refused": 0}
    assert await requests(stack) == [(issue.key, "requested")]
    await stack.settle()
    assert "Exception requested for package openssl on prod-01 until 2026-01-20 23:59" in (
        said(issue)
    )
    assert "comment '/approve'" in said(issue)

    await jira.comment_as(issue.key, "bob", "/approve")  # mapped, but not an operator
    await jira.comment_as(issue.key, "alice", "/approve")  # an operator
    answers = [json.loads(d.answer) for d in jira.deliveries[-2:]]
    assert answers == [{"counted": 0, "refused": 1}, {"counted": 1, "refused": 0}]
    await stack.settle()
    (granted,) = await active(stack)
    assert (granted.host_name, granted.package, granted.owner) == ("prod-01", "openssl", APPROVER_1)
    assert granted.ticket_key == issue.key  # the request is the exception's ticket
    assert f"{APPROVER_2} is not an operator" in said(issue)
    assert f"granted by {APPROVER_1}: exception #{granted.id} until 2026-01-20" in said(issue)
    assert [i for i in jira.issues.values() if i.key != issue.key] == []  # no second ticket

    async with unit_of_work(stack.db) as session:
        await exceptions.revoke(
            session,
            exception_id=granted.id,
            actor=Actor(APPROVER_1),
            operators=OPERATORS,
            now=stack.rig.clock.now(),
            reason="certified",
        )
    await stack.settle()
    assert f"Exception #{granted.id} revoked by {APPROVER_1}: certified" in said(issue)


async def test_a_lapsed_exception_is_told_on_the_request_and_decided_requests_refuse_votes(
    stack: Stack, jira: JiraEmulator
) -> None:
    accept_requests(stack)
    issue = await ask(jira)
    await jira.comment_as(issue.key, "alice", "/approve")
    await jira.comment_as(issue.key, "alice", "/reject changed my mind")
    assert json.loads(jira.deliveries[-1].answer) == {"counted": 0, "refused": 1}
    await stack.settle()
    assert "the request is granted; nothing changed" in said(issue)
    stack.rig.clock.set(dt.datetime(2026, 1, 21, tzinfo=dt.UTC))
    await stack.settle()
    assert "expired 2026-01-20 23:59 UTC; the next rollouts patch it again" in said(issue)


async def test_bad_fields_and_self_approval_are_refused_and_told_on_the_issue(
    stack: Stack, jira: JiraEmulator
) -> None:
    accept_requests(stack)
    too_far = await ask(jira, duedate="2026-06-01", customfield_10101="bad host!")
    mine = await ask(jira, person="alice")
    await jira.comment_as(too_far.key, "alice", "/approve")
    await jira.comment_as(mine.key, "alice", "/approve")
    await stack.settle()
    assert await requests(stack) == [(too_far.key, "invalid"), (mine.key, "requested")]
    assert "'bad host!' is not a host name" in said(too_far)
    assert "the expiry may be at most 30 days ahead" in said(too_far)
    assert "the request is invalid" in said(too_far)
    assert "may not approve their own exception" in said(mine)
    assert await active(stack) == []
    async with read_only(stack.db) as session:
        kinds = list(await session.scalars(sa.select(Event.kind).order_by(Event.id)))
    assert kinds.count("exception.refused") == 2 and kinds.count("exception.requested") == 2


async def test_polling_takes_requests_and_their_approval_when_webhooks_cannot_reach(
    stack: Stack, jira: JiraEmulator
) -> None:
    accept_requests(stack)
    jira.webhooks.clear()
    issue = await ask(jira)
    await jira.comment_as(issue.key, "alice", "/approve")
    assert await stack.polling.poll_once() == 1  # taken, then approved, in one poll
    assert await requests(stack) == [(issue.key, "granted")]
    assert await stack.polling.poll_once() == 0
    await stack.settle()
    assert f"granted by {APPROVER_1}" in said(issue)
    (granted,) = await active(stack)
    assert granted.ticket_key == issue.key
