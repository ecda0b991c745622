"""The Jira adapter with the real ``jira`` client against the Jira REST emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bot.app import build_ticket_deliverers
from bot.settings import load_settings
from integrations.jira import JiraConfig, JiraTicketer
from tests.fakes.jira_api import JiraEmulator
from workflows.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from workflows.outbox import DeliveryItem
from workflows.ports import Delivery
from workflows.tickets import idempotency_label, labels_for

PRIORITIES = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}


@pytest_asyncio.fixture(params=["Server", "Cloud"])
async def jira(request: pytest.FixtureRequest) -> AsyncIterator[JiraEmulator]:
    emulator = JiraEmulator(deployment=request.param)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def ticketer(jira: JiraEmulator, **overrides: Any) -> JiraTicketer:
    config: dict[str, Any] = {
        "url": jira.url,
        "token": jira.token,
        "user": jira.user,
        "project": "OPS",
        "priorities": PRIORITIES,
        "timeout": 5,
        "search_settle": 0.3,
    }
    config.update(overrides)
    return JiraTicketer(JiraConfig(**config), sleep=lambda _s: None)


def create_item(key: str = "ticket:1:create", *, attempts: int = 0, **payload: Any) -> DeliveryItem:
    body: dict[str, Any] = {
        "action": "create",
        "subject": "web-03",
        "cause": "health-failed",
        "summary": "[PatchGate] web-03: health check failed after openssl 3.0.11-1~deb12u2",
        "description": "Rollout: #4 (plan weekly)\nExit code: 0",
        "severity": "high",
        "labels": labels_for("web-03", "health-failed"),
        "idempotency_label": idempotency_label(key),
        "dedupe": True,
    }
    body.update(payload)
    return DeliveryItem(
        id=1,
        key=key,
        topic="ticket",
        payload=body,
        rollout_id=None,
        parent=None,
        attempts=attempts,
    )


def child_item(action: str, key: str, parent_key: str, body: str) -> DeliveryItem:
    return DeliveryItem(
        id=2,
        key=key,
        topic="ticket",
        payload={"action": action, "issue_key": None, "body": body, "marker": key},
        rollout_id=None,
        parent=Delivery({"key": parent_key}),
        attempts=0,
    )


async def test_ticket_is_created_with_summary_description_labels_priority_and_type(
    jira: JiraEmulator,
) -> None:
    delivery = await ticketer(jira).deliver(create_item())
    assert delivery.data["created"] is True
    issue = jira.issues[delivery.data["key"]]
    assert issue.fields["summary"].startswith("[PatchGate] web-03: health check failed")
    assert "Rollout: #4" in issue.fields["description"]
    assert issue.fields["project"] == {"key": "OPS"}
    assert issue.fields["issuetype"] == {"name": "Task"}
    assert issue.fields["priority"] == {"name": "High"}
    assert set(issue.labels) == {
        "patchgate",
        "pg-host-web-03",
        "pg-cause-health-failed",
        "pg-outbox-ticket_1_create",
    }


async def test_a_second_delivery_of_the_same_create_finds_the_ticket_by_its_outbox_label(
    jira: JiraEmulator,
) -> None:
    t = ticketer(jira)
    first = await t.deliver(create_item())
    second = await t.deliver(create_item(attempts=1))
    key = first.data["key"]
    assert second.data == {
        "key": key,
        "url": f"{jira.url}/browse/{key}",
        "created": False,
        "found_by": "outbox-key",
    }
    assert len(jira.issues) == 1


async def test_an_open_ticket_made_outside_patchgate_is_commented_instead_of_duplicated(
    jira: JiraEmulator,
) -> None:
    manual = jira.add_issue(
        project="OPS", summary="web-03 broken", labels=labels_for("web-03", "health-failed")
    )
    delivery = await ticketer(jira).deliver(create_item())
    assert delivery.data == {
        "key": manual.key,
        "url": f"{jira.url}/browse/{manual.key}",
        "created": False,
        "found_by": "labels",
    }
    assert len(jira.issues) == 1
    assert "health check failed" in manual.comments[0]["body"]


async def test_search_pages_through_results_with_the_api_the_deployment_offers(
    jira: JiraEmulator,
) -> None:
    for n in range(5):  # page size 2: three pages
        jira.add_issue(project="OPS", summary=f"other {n}", labels=["patchgate"])
    t = ticketer(jira)
    await t.deliver(create_item())  # builds the client
    found = await t._run("search", lambda j: t._search(j, 'labels = "patchgate"'))
    assert len(found) == 6
    path = "search/jql" if jira.deployment == "Cloud" else "search"
    assert sum(1 for m, p in jira.calls if p == path) >= 3 + 2  # the create's searches too


async def test_resolve_comments_and_moves_the_ticket_through_the_named_transition(
    jira: JiraEmulator,
) -> None:
    t = ticketer(jira)
    key = (await t.deliver(create_item())).data["key"]
    delivery = await t.deliver(child_item("resolve", "ticket:1:resolve", key, "Fixed by #5"))
    assert delivery.data == {"key": key, "transitioned": True, "transition": "Done"}
    assert jira.issues[key].status == "Done"
    assert "Fixed by #5" in jira.issues[key].comments[-1]["body"]
    assert ("POST", f"issue/{key}/transitions") in jira.calls


async def test_resolve_without_the_transition_comments_and_says_so(jira: JiraEmulator) -> None:
    jira.transitions = [t for t in jira.transitions if t["name"] != "Done"]
    t = ticketer(jira)
    key = (await t.deliver(create_item())).data["key"]
    delivery = await t.deliver(child_item("resolve", "ticket:1:resolve", key, "Fixed"))
    assert delivery.data == {"key": key, "transitioned": False, "transition": "Done"}
    assert jira.issues[key].status == "To Do"
    assert len(jira.issues[key].comments) == 1


async def test_a_retried_comment_is_not_posted_twice(jira: JiraEmulator) -> None:
    t = ticketer(jira)
    key = (await t.deliver(create_item())).data["key"]
    item = child_item("comment", "ticket:1:comment:x", key, "seen again")
    await t.deliver(item)
    await t.deliver(item)
    assert len(jira.issues[key].comments) == 1


async def test_building_the_client_while_jira_is_down_is_transient_and_retried_later(
    jira: JiraEmulator,
) -> None:
    await jira.stop()
    t = ticketer(jira)  # constructing the adapter calls nothing
    with pytest.raises(TransientDeliveryError, match="ConnectionError"):
        await t.deliver(create_item())
    await jira.start()
    assert (await t.deliver(create_item(attempts=1))).data["created"] is True


@pytest.mark.parametrize("status", [502, 503])
async def test_server_errors_are_transient(jira: JiraEmulator, status: int) -> None:
    t = ticketer(jira)
    await t.deliver(create_item("ticket:0:create"))
    jira.fail_next(status, path="issue", plain=status == 502)
    with pytest.raises(TransientDeliveryError, match=f"HTTP {status}"):
        await t.deliver(create_item())


async def test_429_is_transient_and_carries_retry_after(jira: JiraEmulator) -> None:
    t = ticketer(jira)
    await t.deliver(create_item("ticket:0:create"))
    jira.fail_next(429, retry_after=42)
    with pytest.raises(TransientDeliveryError) as caught:
        await t.deliver(create_item())
    assert caught.value.retry_after == 42


async def test_a_400_is_permanent_and_names_jiras_field_errors(jira: JiraEmulator) -> None:
    t = ticketer(jira, project="NOPE")
    with pytest.raises(PermanentDeliveryError, match=r"HTTP 400.*valid project is required"):
        await t.deliver(create_item())


@pytest.mark.parametrize("plain", [False, True])
async def test_a_401_json_or_plain_text_is_permanent_and_leaks_no_token(
    jira: JiraEmulator, plain: bool
) -> None:
    jira.auth_plain_text = plain
    t = ticketer(jira, token="wrong-token-value")
    with pytest.raises(PermanentDeliveryError, match="HTTP 401") as caught:
        await t.deliver(create_item())
    assert "wrong-token-value" not in str(caught.value)
    assert "Authorization" not in str(caught.value)


async def test_a_comment_on_a_missing_issue_is_a_permanent_404(jira: JiraEmulator) -> None:
    t = ticketer(jira)
    await t.deliver(create_item())
    with pytest.raises(PermanentDeliveryError, match="HTTP 404"):
        await t.deliver(child_item("comment", "ticket:9:comment:x", "OPS-999", "hello"))


async def test_a_create_whose_answer_was_lost_is_found_on_the_retry(jira: JiraEmulator) -> None:
    jira.search_lag = 0.2  # Cloud: the new issue is not searchable at once
    t = ticketer(jira, search_settle=0.5)
    t._sleep = __import__("time").sleep
    jira.lose_create_responses(1)
    with pytest.raises(TransientDeliveryError):
        await t.deliver(create_item())
    assert len(jira.issues) == 1
    retry = await t.deliver(create_item(attempts=1))
    assert retry.data["found_by"] == "outbox-key"
    assert len(jira.issues) == 1


@pytest.mark.parametrize(
    ("severity", "risk", "priority", "why"),
    [
        ("low", 95, "High", "raised 2 levels: risk score 95 reached 70, 90"),
        ("medium", 70, "High", "raised 1 level: risk score 70 reached 70"),
        ("high", 95, "Highest", "raised 1 level: risk score 95 reached 70, 90"),  # capped
        ("high", 69, "High", None),
        ("medium", None, "Medium", None),  # host never assessed
    ],
)
async def test_the_risk_score_raises_the_priority_one_level_per_threshold_reached(
    jira: JiraEmulator, severity: str, risk: int | None, priority: str, why: str | None
) -> None:
    t = ticketer(jira, risk_thresholds=(70, 90))
    delivery = await t.deliver(create_item(severity=severity, risk_score=risk))
    issue = jira.issues[delivery.data["key"]]
    assert issue.fields["priority"] == {"name": priority}
    assert delivery.data["priority"] == priority
    if why is None:
        assert "Priority:" not in issue.fields["description"]
    else:
        assert f"Priority: {priority} (severity {severity}, {why})" in (issue.fields["description"])


def test_the_risk_thresholds_setting_is_checked_and_reaches_the_ticketer() -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings(_env_file=None, jira_risk_thresholds="70,high")
    assert bad.value.problems == [
        "PATCHGATE_JIRA_RISK_THRESHOLDS: 'high' is not a risk score threshold "
        "(a whole number from 1 to 100)"
    ]
    assert load_settings(_env_file=None).jira_risk_threshold_list == (70, 90)
    settings = load_settings(
        _env_file=None,
        jira_url="http://jira.invalid",
        jira_token="t",
        jira_risk_thresholds="90, 60",
    )
    (built,) = build_ticket_deliverers(settings).values()
    assert isinstance(built, JiraTicketer)
    assert built.config.risk_thresholds == (60, 90)
    off = load_settings(
        _env_file=None, jira_url="http://jira.invalid", jira_token="t", jira_risk_thresholds=""
    )
    (built_off,) = build_ticket_deliverers(off).values()
    assert isinstance(built_off, JiraTicketer) and built_off.config.risk_thresholds == ()
