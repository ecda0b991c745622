"""File uploads through the outbox (issue 16): Slack's external upload flow with the real
slack_sdk against the Slack emulator; a share lands in the channel or thread; Slack's
failures are retried, then dead-lettered with a note to the person who asked."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa

from integrations.slack import make_client
from integrations.slack.uploads import TOPIC, UploadDeliverer, file_upload
from tests.enginekit import REQUESTER
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import TOKEN, Bot
from workflows import outbox
from workflows.db import read_only, unit_of_work
from workflows.models import OutboxItem

MARKER = "manifest 0123abcd"


def bundle(tmp_path: Path, size: int = 300_000) -> Path:
    path = tmp_path / "patchgate-evidence-test.zip"
    path.write_bytes(bytes(range(256)) * (size // 256))
    return path


async def queue(bot: Bot, path: Path, *, thread_ts: str | None = None) -> None:
    payload = file_upload(
        path,
        channel="C0PATCHES",
        thread_ts=thread_ts,
        initial_comment=f"Evidence bundle · {MARKER}",
        marker=MARKER,
        requested_by=REQUESTER,
    )
    async with unit_of_work(bot.rig.db) as session:
        await outbox.enqueue(
            session, key="upload:1", topic=TOPIC, payload=payload, at=bot.rig.clock.now()
        )


async def the_row(bot: Bot) -> OutboxItem:
    async with read_only(bot.rig.db) as session:
        return (await session.scalars(sa.select(OutboxItem).where(OutboxItem.topic == TOPIC))).one()


def worker(bot: Bot, slack_api: SlackEmulator, max_attempts: int = 12) -> outbox.OutboxWorker:
    client = make_client(token=TOKEN, base_url=slack_api.url, timeout=2)
    return outbox.OutboxWorker(
        bot.rig.db, {TOPIC: UploadDeliverer(client)}, clock=bot.rig.clock.now, owner="up",
        max_attempts=max_attempts, base_backoff=1, max_backoff=1,
    )  # fmt: skip


async def test_an_upload_lands_in_the_thread_it_was_queued_for(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    parent = await make_client(token=TOKEN, base_url=slack_api.url).chat_postMessage(
        channel="C0PATCHES", text="Rollout #1"
    )
    path = bundle(tmp_path)
    await queue(bot, path, thread_ts=parent["ts"])
    assert await worker(bot, slack_api).run_once() == 1
    [upload] = slack_api.files.values()
    assert (upload.channel, upload.thread_ts) == ("C0PATCHES", parent["ts"])
    assert upload.data == path.read_bytes() and upload.title == path.name
    [share] = [m for m in slack_api.posted("C0PATCHES") if m.get("files")]
    assert share["thread_ts"] == parent["ts"] and MARKER in share["text"]
    row = await the_row(bot)
    assert row.state == "delivered" and row.result == {
        "channel": "C0PATCHES",
        "file_id": upload.file_id,
    }
    # the row holds the file's path, size and digest, never its bytes
    assert row.payload["path"] == str(path.resolve()) and row.payload["size"] == 299_776
    assert len(json.dumps(row.payload)) < 1000
    [note] = slack_api.called("chat.postEphemeral")
    assert note.params["user"] == REQUESTER and note.params["text"].startswith(
        f":white_check_mark: Posted `{path.name}`"
    )


async def test_a_500_from_the_upload_url_is_retried_and_the_file_shared_once(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    slack_api.fail("500", times=1, methods=["upload"])
    await queue(bot, bundle(tmp_path))
    up = worker(bot, slack_api)
    assert await up.run_once() == 0
    row = await the_row(bot)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error == "Slack's upload URL answered HTTP 500"
    bot.rig.clock.advance(dt.timedelta(seconds=2))
    assert await up.run_once() == 1
    assert [u.channel for u in slack_api.files.values()] == [None, "C0PATCHES"]
    assert len([m for m in slack_api.posted("C0PATCHES") if m.get("files")]) == 1


async def test_an_upload_url_that_keeps_failing_goes_dead_and_the_person_is_told(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    slack_api.fail("500", times=100, methods=["upload"])
    path = bundle(tmp_path)
    await queue(bot, path)
    up = worker(bot, slack_api, max_attempts=3)
    for _ in range(3):
        await up.run_once()
        bot.rig.clock.advance(dt.timedelta(seconds=2))
    row = await the_row(bot)
    assert (row.state, row.attempts) == ("dead", 3)
    assert not [m for m in slack_api.posted("C0PATCHES") if m.get("files")]
    [note] = slack_api.called("chat.postEphemeral")
    assert note.params["user"] == REQUESTER and note.params["channel"] == "C0PATCHES"
    assert note.params["text"] == (
        f":warning: `{path.name}` could not be posted here: Slack kept failing, 3 tries "
        f"(Slack's upload URL answered HTTP 500). It is kept in {tmp_path}."
    )


async def test_a_channel_the_app_is_not_in_is_a_dead_letter_at_once(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    slack_api.not_in.add("C0PATCHES")
    await queue(bot, bundle(tmp_path))
    await worker(bot, slack_api).run_once()
    row = await the_row(bot)
    assert (row.state, row.attempts) == ("dead", 1)
    assert "not_in_channel" in (row.last_error or "")
    [dm] = slack_api.posted(REQUESTER)
    assert "the app is not a member of this channel" in dm["text"]


async def test_a_bundle_deleted_before_delivery_is_a_dead_letter_naming_the_file(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    path = bundle(tmp_path)
    await queue(bot, path)
    path.unlink()
    await worker(bot, slack_api).run_once()
    row = await the_row(bot)
    assert row.state == "dead" and f"the file {path} no longer exists" in (row.last_error or "")
    assert slack_api.called("files.getUploadURLExternal") == []
    [note] = slack_api.called("chat.postEphemeral")
    assert "no longer exists" in note.params["text"]


async def test_a_share_whose_answer_was_lost_is_found_and_not_shared_again(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    slack_api.fail("lost", times=1, methods=["files.completeUploadExternal"])
    await queue(bot, bundle(tmp_path))
    up = worker(bot, slack_api)
    assert await up.run_once() == 0
    bot.rig.clock.advance(dt.timedelta(seconds=2))
    assert await up.run_once() == 1
    assert len([m for m in slack_api.posted("C0PATCHES") if m.get("files")]) == 1
    row = await the_row(bot)
    assert row.result and row.result["found"] is True
    assert len(slack_api.called("files.getUploadURLExternal")) == 1


async def test_the_emulator_refuses_uploads_as_slack_documents(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    slack_api.max_upload_bytes = 1000
    await queue(bot, bundle(tmp_path))
    await worker(bot, slack_api).run_once()
    row = await the_row(bot)
    assert row.state == "dead" and "file_upload_size_restricted" in (row.last_error or "")
