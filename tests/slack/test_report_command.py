"""`/patch report` through the real Bolt app: acked at once, the bundle built after the ack,
kept on disk, and uploaded through the outbox with the real slack_sdk's files_upload_v2
to the emulator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa

from tests.enginekit import OUTSIDER, REQUESTER
from tests.fakes.slack_api import SlackEmulator
from tests.reportkit import drive_rollout
from tests.slack.conftest import Bot
from workflows.db import read_only
from workflows.models import Event
from workflows.reports import verify_bundle

COMMAND = "report --since 2026-01-01 --until 2026-01-14 --framework soc2"


def save(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_report_is_acked_then_built_kept_and_uploaded_to_the_channel(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    await drive_rollout(bot.deps.db)
    reports = tmp_path / "reports"
    bot.deps.settings = bot.deps.settings.model_copy(update={"report_dir": reports})

    status, body = await bot.command(COMMAND, user=REQUESTER)
    assert status == 200
    assert "Building the evidence bundle for 2026-01-01 00:00 to 2026-01-15 00:00" in body

    [queued] = await slack_api.wait_for("chat.postEphemeral", within=120)
    assert "is built" in queued.params["text"] and "being posted" in queued.params["text"]
    assert slack_api.called("files.getUploadURLExternal") == []  # the outbox uploads it
    await bot.deliver()
    [start] = slack_api.called("files.getUploadURLExternal")
    name = "patchgate-evidence-20260101T0000-20260115T0000-soc2.zip"
    assert start.params["filename"] == name
    [upload] = slack_api.files.values()
    assert upload.channel == "C0PATCHES" and upload.title == name
    kept = reports / name
    assert upload.data == kept.read_bytes()
    assert verify_bundle(save(tmp_path / "uploaded.zip", upload.data or b"")).ok
    comment = upload.initial_comment or ""
    assert f"requested by <@{REQUESTER}>" in comment
    assert "critical: 9 fixes patched, median 7.2 days, within SLA 40%, 1 open" in comment
    [message] = [m for m in slack_api.posted("C0PATCHES") if m.get("files")]
    assert message["files"] == [upload.file_id]

    _, answer = slack_api.called("chat.postEphemeral")
    assert answer.params["user"] == REQUESTER
    assert answer.params["text"].startswith(f":white_check_mark: Posted `{name}`")


async def test_a_non_operator_is_refused_audited_and_nothing_is_built(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    bot.deps.settings = bot.deps.settings.model_copy(update={"report_dir": tmp_path / "r"})
    status, body = await bot.command(COMMAND, user=OUTSIDER)
    assert status == 200 and f"{OUTSIDER} is not an operator" in json.loads(body)["text"]
    assert slack_api.called("files.getUploadURLExternal") == []
    assert not (tmp_path / "r").exists()
    async with read_only(bot.deps.db) as session:
        kinds = list(await session.scalars(sa.select(Event.kind)))
    assert kinds == ["report.refused"]


async def test_bad_options_get_the_usage_line_and_build_nothing(
    bot: Bot, slack_api: SlackEmulator
) -> None:
    for text, why in [
        ("report --framework nist", "unknown framework 'nist'"),
        ("report --since", "a value is missing after --since"),
        ("report --since 2026-02-01 --until 2026-01-01", "must be before --until"),
        ("report --since soon", "is not a date"),
        ("report now", "unexpected 'now'"),
    ]:
        status, body = await bot.command(text, user=REQUESTER)
        reply = json.loads(body)["text"]
        assert status == 200 and why in reply and "Usage: `/patch report" in reply, text
    assert slack_api.called("files.getUploadURLExternal") == []


async def test_a_refused_upload_is_said_to_the_person_and_the_bundle_is_kept(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    bot.deps.settings = bot.deps.settings.model_copy(update={"report_dir": reports})
    slack_api.not_in.add("C0PATCHES")  # the app was never invited to the channel
    status, _ = await bot.command("report --since 2026-01-01 --until 2026-01-14", user=REQUESTER)
    assert status == 200
    await slack_api.wait_for("chat.postEphemeral", within=120)
    await bot.deliver()
    [complete] = slack_api.called("files.completeUploadExternal")
    assert complete.response == {"ok": False, "error": "not_in_channel"}
    assert all(u.channel is None for u in slack_api.files.values())
    name = "patchgate-evidence-20260101T0000-20260115T0000.zip"
    assert [p.name for p in reports.iterdir()] == [name]
    # the app cannot post in the channel, ephemerally or not: the note comes as a DM
    [note] = slack_api.posted(REQUESTER)
    assert note["text"] == (
        f":warning: `{name}` could not be posted here: the app is not a member of this "
        f"channel (invite it, then ask again) (not_in_channel). It is kept in {reports}."
    )


async def test_a_500_on_the_upload_url_is_retried_and_the_bundle_still_posted(
    bot: Bot, slack_api: SlackEmulator, tmp_path: Path
) -> None:
    # Before issue 16 the upload ran inside the command: a failed POST to the upload URL
    # raised past the handler and the person saw only "Something went wrong".
    bot.deps.settings = bot.deps.settings.model_copy(update={"report_dir": tmp_path / "r"})
    slack_api.fail("500", times=1, methods=["upload"])
    status, _ = await bot.command("report --since 2026-01-01 --until 2026-01-14", user=REQUESTER)
    assert status == 200
    [queued] = await slack_api.wait_for("chat.postEphemeral", within=120)
    assert "Something went wrong" not in queued.params["text"]
    await bot.deliver()
    assert [c.status for c in slack_api.calls if c.method == "upload"] == [500]
    bot.rig.clock.advance(dt.timedelta(seconds=1))
    await bot.deliver()
    [shared] = [u for u in slack_api.files.values() if u.channel == "C0PATCHES"]
    assert shared.filename == "patchgate-evidence-20260101T0000-20260115T0000.zip"
    _, posted = slack_api.called("chat.postEphemeral")
    assert posted.params["text"].startswith(":white_check_mark: Posted")
