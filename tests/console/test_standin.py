"""The console's Slack stand-in, driven by the real ``slack_sdk`` client: the Web API
methods PatchGate calls answer in Slack's shapes, and what they post is what the page
shows (``GET /console/state``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.console.page import build_page_app
from bot.console.relay import Relay
from bot.console.workspace import Workspace

TOKEN = "xoxb-console-test"
ALICE, OPERATOR = "U0123ABCDE", "U0999OPERA"
PATCHING, ONCALL = "C0123456789", "C0ONCALL"


@pytest_asyncio.fixture
async def workspace() -> AsyncIterator[Workspace]:
    ws = Workspace(token=TOKEN)
    relay = Relay(ws, events_url="http://127.0.0.1:9/slack/events", secret="s", page_url="")
    runner = web.AppRunner(build_page_app(ws, relay), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ws.url = f"http://127.0.0.1:{port}/api/"
    yield ws
    await relay.close()
    await runner.cleanup()


def client(ws: Workspace, token: str = TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=ws.url)


async def test_a_posted_message_its_thread_and_its_update_are_kept_as_slack_returns_them(
    workspace: Workspace,
) -> None:
    slack = client(workspace)
    parent = await slack.chat_postMessage(
        channel=PATCHING,
        text="Rollout #1",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*Rollout #1*"}}],
        metadata={"event_type": "patchgate_outbox", "event_payload": {"key": "k1"}},
    )
    assert parent["ok"] and parent["channel"] == PATCHING
    reply = await slack.chat_postMessage(channel=PATCHING, text="Ring dev", thread_ts=parent["ts"])
    await slack.chat_update(channel=PATCHING, ts=parent["ts"], text="Rollout #1 done")

    history = await slack.conversations_history(channel=PATCHING, include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["Rollout #1 done"]
    assert history["messages"][0]["metadata"]["event_payload"] == {"key": "k1"}
    assert "edited" in history["messages"][0]
    replies = await slack.conversations_replies(channel=PATCHING, ts=parent["ts"])
    assert [m["ts"] for m in replies["messages"]] == [parent["ts"], reply["ts"]]
    assert "metadata" not in replies["messages"][0]  # only with include_all_metadata


async def test_errors_come_in_slacks_shapes(workspace: Workspace) -> None:
    slack = client(workspace)
    for call, error in (
        (slack.chat_postMessage(channel="C0NOWHERE", text="x"), "channel_not_found"),
        (slack.chat_update(channel=PATCHING, ts="1.000001", text="x"), "message_not_found"),
        (slack.chat_postMessage(channel=PATCHING), "no_text"),
        (slack.views_open(trigger_id="made-up", view={"type": "modal"}), "invalid_trigger_id"),
        (slack.usergroups_users_list(usergroup="S0NOBODY"), "no_such_subteam"),
        (client(workspace, "xoxb-wrong").auth_test(), "invalid_auth"),
    ):
        with pytest.raises(SlackApiError) as caught:
            await call
        assert caught.value.response["error"] == error
    assert workspace.messages == {}


async def test_an_ephemeral_message_is_shown_to_its_person_only(workspace: Workspace) -> None:
    import aiohttp

    await client(workspace).chat_postEphemeral(channel=PATCHING, user=ALICE, text="only alice")
    base = workspace.url.removesuffix("api/")
    async with aiohttp.ClientSession() as http:
        seen = {}
        for user in (ALICE, OPERATOR):
            async with http.get(f"{base}console/state", params={"user": user}) as resp:
                seen[user] = [e["text"] for e in (await resp.json())["ephemeral"]]
    assert seen == {ALICE: ["only alice"], OPERATOR: []}


async def test_a_modal_opens_for_the_person_whose_trigger_it_is_and_updates(
    workspace: Workspace,
) -> None:
    slack = client(workspace)
    trigger = workspace.trigger_for(ALICE)
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Reject"}, "blocks": []}
    opened = await slack.views_open(trigger_id=trigger, view=view)
    assert opened["view"]["id"] and opened["view"]["type"] == "modal"
    assert [m.user for m in workspace.modals[ALICE]] == [ALICE]
    with pytest.raises(SlackApiError):  # a trigger is good for one view
        await slack.views_open(trigger_id=trigger, view=view)
    updated = {**view, "title": {"type": "plain_text", "text": "Done"}}
    await slack.views_update(view_id=opened["view"]["id"], view=updated)
    assert workspace.modals[ALICE][0].view["title"]["text"] == "Done"


async def test_app_home_is_published_per_person(workspace: Workspace) -> None:
    slack = client(workspace)
    home = {
        "type": "home",
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Hi"}}],
    }
    await slack.views_publish(user_id=ALICE, view=home)
    assert workspace.homes == {ALICE: home}
    with pytest.raises(SlackApiError):
        await slack.views_publish(user_id=ALICE, view={"type": "modal", "blocks": []})


async def test_people_and_groups_are_the_consoles(workspace: Workspace) -> None:
    slack = client(workspace)
    oncall = await slack.usergroups_users_list(usergroup="S0ONCALL")
    assert oncall["users"] == ["U0555ONCAL"]
    info = await slack.users_info(user=ALICE)
    assert info["user"]["name"] == "alice.approver"
    assert (await slack.auth_test())["user_id"] == "U0PATCHBOT"


async def test_a_file_uploaded_with_files_upload_v2_is_shared_in_the_thread(
    workspace: Workspace,
) -> None:
    slack = client(workspace)
    parent = await slack.chat_postMessage(channel=PATCHING, text="Report")
    done = await slack.files_upload_v2(
        channel=PATCHING,
        thread_ts=parent["ts"],
        content=b"PK evidence",
        filename="evidence.zip",
        title="Evidence",
        initial_comment="the bundle",
    )
    assert done["files"][0]["title"] == "Evidence"
    shared = workspace.messages[PATCHING][-1]
    assert shared["thread_ts"] == parent["ts"]
    assert shared["files"][0]["name"] == "evidence.zip"
    assert shared["text"] == "the bundle"


async def test_a_direct_message_to_a_person_lands_in_their_app_messages(
    workspace: Workspace,
) -> None:
    await client(workspace).chat_postMessage(channel=ALICE, text="your report is ready")
    assert [m["text"] for m in workspace.messages[ALICE]] == ["your report is ready"]
