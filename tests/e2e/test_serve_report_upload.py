"""Issue 16 on the real ``patchgate serve``: ``/patch report`` builds the bundle and the
leader's outbox posts it through Slack's external upload flow, retrying a 500 from the
upload URL; the person is told it was posted (before: "Something went wrong")."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path

from tests.e2e.harness import OPERATOR, ServeProcess, base_env, migrate
from tests.e2e.test_slack_serve import _post
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, TOKEN, signed_request
from tests.slack.conftest import slack_api as slack_api  # the fixture

NAME = "patchgate-evidence-20260101T0000-20260115T0000.zip"


async def test_serve_posts_the_report_bundle_through_the_outbox_after_a_500(
    tmp_path: Path, slack_api: SlackEmulator
) -> None:
    url = f"sqlite:///{tmp_path / 'pg.db'}"
    await asyncio.to_thread(migrate, url, tmp_path)
    reports = tmp_path / "reports"
    env = base_env(
        url,
        PATCHGATE_SLACK_BOT_TOKEN=TOKEN,
        PATCHGATE_SLACK_SIGNING_SECRET=SECRET,
        PATCHGATE_SLACK_API_URL=slack_api.url,
        PATCHGATE_REPORT_DIR=str(reports),
    )
    slack_api.fail("500", times=1, methods=["upload"])
    body = urllib.parse.urlencode(
        {
            "team_id": "T0TEAM",
            "user_id": OPERATOR,
            "channel_id": "C0PATCHES",
            "command": "/patch",
            "text": "report --since 2026-01-01 --until 2026-01-14",
        }
    )
    with ServeProcess(env, cwd=tmp_path) as serve:
        await asyncio.to_thread(serve.wait_ready)
        await asyncio.to_thread(serve.wait_leader, timeout=15)
        status, text = await asyncio.to_thread(_post, serve.port, body, signed_request(body))
        assert status == 200 and "Building the evidence bundle" in text, serve.log()
        calls = await slack_api.wait_for("chat.postEphemeral", 2, within=60)
        notes = [c.params["text"] for c in calls]
        assert len(notes) == 2, (notes, serve.log())
        assert "is built" in notes[0] and notes[1].startswith(":white_check_mark: Posted")
        assert [c.status for c in slack_api.calls if c.method == "upload"] == [500, 200]
        [shared] = [u for u in slack_api.files.values() if u.channel == "C0PATCHES"]
        assert shared.filename == NAME and shared.data == (reports / NAME).read_bytes()
        assert "Something went wrong" not in serve.log()
        assert await asyncio.to_thread(serve.terminate, timeout=45) == 0
