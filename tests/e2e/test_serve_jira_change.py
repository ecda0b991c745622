"""Done for issue 23: ``patchgate serve`` as a real process, Slack and Jira (Cloud) pointed at
their emulators. A rollout started in Slack gets one Jira change ticket; its canary gate
is approved in Jira (a comment, delivered by webhook), its production gate in Slack (a
signed click); the ticket tells the whole story and is resolved with the outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.e2e.harness import OPERATOR, ServeProcess, base_env, migrate
from tests.e2e.test_slack_serve import _post
from tests.fakes.jira_api import FakeIssue, JiraEmulator
from tests.fakes.slack_api import SlackEmulator, slack_emulator
from tests.slack.conftest import SECRET, TOKEN, signed_request

T = TypeVar("T")
JIRA_APPROVER = "U0JANE0001"  # jane in Jira, found in Slack by her e-mail
SLACK_APPROVER = "U0SAM00001"
WEBHOOK_SECRET = "e2e-webhook-secret-0123456789"
PLAN = f"""
name: change-demo
packages: {{include: ["*"]}}
reboot: never
slack: {{channel: C0PATCHES}}
jira: {{project: OPS}}
change: {{ticket: true}}
rings:
  - {{name: dev, hosts: "group:dev", batch: 100%}}
  - name: canary
    hosts: group:staging
    batch: 100%
    gate: {{type: approval, approvers: {{users: [{JIRA_APPROVER}]}}, timeout: 4h}}
  - name: prod
    hosts: "host:web-01 or host:web-02"
    batch: 100%
    gate: {{type: approval, approvers: {{users: [{SLACK_APPROVER}]}}, timeout: 4h}}
"""


async def eventually(what: str, probe: Callable[[], T | None], *, within: float = 60) -> T:
    """Poll ``probe`` on the event loop (the emulators live on it) until it answers."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.2)


def change_issue(jira: JiraEmulator) -> FakeIssue | None:
    found = [i for i in jira.issues.values() if "pg-cause-change" in i.labels]
    return found[0] if found else None


def said(issue: FakeIssue) -> str:
    return "\n".join(c["body"] for c in issue.comments)


def gate_message(slack: SlackEmulator, ring: str) -> dict[str, Any] | None:
    for message in slack.posted("C0PATCHES"):
        blocks = json.dumps(message.get("blocks") or [])
        if f"Ready for ring {ring}" in (message.get("text") or "") or (
            "gate_actions" in blocks and ring in (message.get("text") or "")
        ):
            return message
    return None


def approve_button(message: dict[str, Any]) -> str | None:
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":
            for element in block["elements"]:
                if element["action_id"].endswith("approve"):
                    return str(element["value"])
    return None


def click(port: int, value: str, user: str) -> tuple[int, str]:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM"},
        "user": {"id": user},
        "channel": {"id": "C0PATCHES"},
        "container": {"type": "message", "channel_id": "C0PATCHES", "message_ts": "1.1"},
        "message": {"ts": "1.1"},
        "trigger_id": f"trigger-{user}",
        "action_ts": str(time.time_ns()),
        "actions": [{"action_id": "gate_approve", "block_id": "gate_actions", "value": value}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    return _post(port, body, signed_request(body))


async def test_canary_approved_in_jira_prod_in_slack_and_one_change_ticket_tells_it_all(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'pg.db'}"
    await asyncio.to_thread(migrate, url, tmp_path)
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "change.yml").write_text(PLAN)
    jira = JiraEmulator(deployment="Cloud", page_size=50)
    jira.add_person("jane", email="jane@example.com")
    await jira.start()
    emails = {"jane@example.com": JIRA_APPROVER}
    try:
        async with slack_emulator(token=TOKEN, emails=emails) as slack:
            env = base_env(
                url,
                PATCHGATE_PLANS_DIR=str(plans),
                PATCHGATE_SLACK_BOT_TOKEN=TOKEN,
                PATCHGATE_SLACK_SIGNING_SECRET=SECRET,
                PATCHGATE_SLACK_API_URL=slack.url,
                PATCHGATE_JIRA_URL=jira.url,
                PATCHGATE_JIRA_USER=str(jira.user),
                PATCHGATE_JIRA_TOKEN=jira.token,
                PATCHGATE_JIRA_PROJECT="OPS",
                PATCHGATE_JIRA_SEARCH_SETTLE="0",
                PATCHGATE_JIRA_WEBHOOK_SECRET=WEBHOOK_SECRET,
            )
            with ServeProcess(env, cwd=tmp_path) as serve:
                jira.add_webhook(f"http://127.0.0.1:{serve.port}/jira/webhook/{WEBHOOK_SECRET}")
                await asyncio.to_thread(serve.wait_ready)
                await drive(serve, slack, jira)
    finally:
        await jira.stop()


async def drive(serve: ServeProcess, slack: SlackEmulator, jira: JiraEmulator) -> None:
    body = urllib.parse.urlencode(
        {"team_id": "T0TEAM", "user_id": OPERATOR, "command": "/patch", "text": "run change-demo"}
    )
    status, text = await asyncio.to_thread(_post, serve.port, body, signed_request(body))
    assert status == 200 and "Rollout #" in text, (status, text, serve.log()[-3000:])

    issue = await eventually("the change ticket", lambda: change_issue(jira))
    await eventually(
        "the canary gate on the ticket", lambda: "gate before ring canary opened" in said(issue)
    )
    description = issue.fields["description"]
    assert "Rollout #1 of plan change-demo" in description
    assert "canary: 2 host(s), gate approval: staging-01, staging-02" in description
    digest = description.split("Patch set (pinned): ")[1].split()[0]
    assert len(digest) == 64

    # the canary's gate message in Slack, with its buttons, before anyone votes
    canary = await eventually("the canary gate message", lambda: gate_message(slack, "canary"))

    # canary: approved in Jira by a comment, through the webhook. Every delivery that
    # carries the comment counts it at most once between them (with a real serve, the
    # bot's own comments fire webhooks too, and a delivery may race another).
    comment = await jira.comment_as(issue.key, "jane", f"/approve {digest[:12]}")
    carrying = jira.deliveries_of(comment)
    assert carrying and all(d.status == 200 for d in carrying), serve.log()[-3000:]
    answers = [json.loads(d.answer) for d in carrying]
    assert sum(a["counted"] for a in answers) == 1 and sum(a["refused"] for a in answers) == 0
    # the canary's Slack message is updated as for a Slack vote: its buttons give way
    await eventually(
        "the canary message updated with the decision",
        lambda: (
            (m := slack.message("C0PATCHES", canary["ts"])) is not None
            and m.get("updates", 0) >= 1
            and approve_button(m) is None
        ),
    )

    # prod: approved in Slack, a signed click on the readiness message's button
    prod = await eventually("the prod gate message", lambda: gate_message(slack, "prod"))
    value = approve_button(prod)
    assert value is not None
    status, _ = await asyncio.to_thread(click, serve.port, value, SLACK_APPROVER)
    assert status == 200

    await eventually("the ticket resolved", lambda: issue.category == "done", within=90)
    story = said(issue)
    for line in (
        "Slack thread: https://slack.com/archives/C0PATCHES/p",
        "ring dev: pending -> patching",
        f"{JIRA_APPROVER} voted approve on ring canary in jira",
        "gate before ring canary: open -> approved",
        f"{SLACK_APPROVER} voted approve on ring prod in slack",
        "ring prod: verifying -> done",
        "Outcome: the rollout succeeded.",
    ):
        assert line in story, f"{line!r} not in:\n{story}"
    assert len([i for i in jira.issues.values() if "pg-cause-change" in i.labels]) == 1
    notes = " ".join(m.get("text") or "" for m in slack.posted("C0PATCHES"))
    assert f"Change ticket <{jira.url}/browse/{issue.key}|{issue.key}>" in notes
