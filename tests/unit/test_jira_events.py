"""Reading Jira webhook bodies strictly (Cloud and Server shapes), what counts as a vote,
and the settings of Jira votes (issue 23)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.jira.votes import VoteRules, interpret
from bot.settings import load_settings
from integrations.jira_events import BadWebhook, JiraEvent, JiraUser, parse_webhook
from workflows.errors import ConfigError
from workflows.models import Decision

CLOUD_USER = {"accountId": "712020:abc", "displayName": "Alice", "emailAddress": "a@x.example"}
SERVER_USER = {"name": "alice", "key": "JIRAUSER10100", "emailAddress": "a@x.example"}
RULES = VoteRules(
    approve_transitions=frozenset({"approve", "approved"}),
    reject_transitions=frozenset({"reject"}),
)


def body(**fields: Any) -> bytes:
    return json.dumps({"timestamp": 1767492000000, **fields}).encode()


@pytest.mark.parametrize("user", [CLOUD_USER, SERVER_USER], ids=["cloud", "server"])
def test_a_comment_and_a_status_change_are_read_in_either_shape(user: dict[str, Any]) -> None:
    comment = parse_webhook(
        body(
            webhookEvent="comment_created",
            issue={"key": "OPS-7"},
            comment={"id": "10001", "body": "/approve 0123abcd", "author": user},
        )
    )
    (event,) = comment.events
    assert (event.issue_key, event.source, event.comment) == (
        "OPS-7",
        "comment:10001",
        "/approve 0123abcd",
    )
    assert event.user.email == "a@x.example" and event.user.label in ("712020:abc", "alice")
    updated = parse_webhook(
        body(
            webhookEvent="jira:issue_updated",
            user=user,
            issue={"key": "OPS-7"},
            changelog={"id": 555, "items": [{"field": "status", "toString": "Approved"}]},
        )
    )
    (change,) = updated.events
    assert (change.source, change.to_status, change.transition) == (
        "changelog:555",
        "Approved",
        None,
    )


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"\xff", "not JSON"),
        (b"[]", "not a JSON object"),
        (body(webhookEvent="worklog_created", issue={"key": "OPS-1"}), "unexpected webhookEvent"),
        (body(webhookEvent="comment_created", issue={}), "no issue key"),
        (
            body(webhookEvent="comment_created", issue={"key": "OPS-1"}, comment={"body": "x"}),
            "comment without an id",
        ),
        (
            body(
                webhookEvent="comment_created",
                issue={"key": "OPS-1"},
                comment={"id": 1, "body": {"type": "doc"}},
            ),
            "comment body is not text",
        ),
        (
            json.dumps({"timestamp": "soon", "webhookEvent": "comment_created"}).encode(),
            "timestamp is not a whole number",
        ),
        (b"{" + b" " * 300_000 + b"}", "body over"),
    ],
)
def test_a_body_patchgate_cannot_take_is_refused_with_the_reason(raw: bytes, why: str) -> None:
    with pytest.raises(BadWebhook, match=why):
        parse_webhook(raw)


def event(**fields: Any) -> JiraEvent:
    return JiraEvent(issue_key="OPS-1", source="comment:1", user=JiraUser(name="al"), **fields)


def test_only_commands_at_the_start_and_configured_transitions_are_votes() -> None:
    vote = interpret(event(comment="/approve 0123abcd\nthanks"), RULES)
    assert vote is not None and (vote.decision, vote.shown_hash) == (Decision.APPROVE, "0123abcd")
    reject = interpret(event(comment="/REJECT too risky today"), RULES)
    assert reject is not None and (reject.decision, reject.reason) == (
        Decision.REJECT,
        "too risky today",
    )
    assert interpret(event(comment="please /approve this"), RULES) is None
    own = "gate opened. Vote: '/approve 0123' [patchgate:ticket:1:comment:ev:9]"
    assert interpret(event(comment=own), RULES) is None
    by_status = interpret(event(to_status="Approved"), RULES)
    assert by_status is not None and by_status.decision == Decision.APPROVE
    by_name = interpret(event(transition="Reject", to_status="Closed"), RULES)
    assert by_name is not None and by_name.reason == "rejected in Jira (Reject) by al"
    assert interpret(event(to_status="In Progress"), RULES) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jira_webhook_secret", "short"),
        ("jira_webhook_secret", "has spaces in it, which a URL cannot"),
        ("jira_user_map", "alice=not-a-slack-id"),
        ("jira_user_map", "U0ALICE"),
        ("jira_approve_command", "two words"),
        ("jira_exception_fields", "hostname=customfield_1"),
    ],
)
def test_bad_jira_vote_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"PATCHGATE_{name.upper()}"):
        load_settings(**{name: value})


def test_the_user_map_is_read_case_insensitively_by_jira_name() -> None:
    settings = load_settings(jira_user_map="712020:ABC=U0ALICE, bob@x.example=W0BOB")
    assert settings.jira_user_pairs == {"712020:abc": "U0ALICE", "bob@x.example": "W0BOB"}
