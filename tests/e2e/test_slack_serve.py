"""`patchgate serve` as a real process, Slack pointed at the emulator: a signed /patch help
gets the help text, a forged one 401."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.e2e.harness import ServeProcess, base_env, migrate
from tests.fakes.slack_api import SlackEmulator
from tests.slack.conftest import SECRET, TOKEN, signed_request
from tests.slack.conftest import slack_api as slack_api  # the fixture


def _post(port: int, body: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slack/events",
        data=body.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_serve_answers_a_signed_patch_help_and_refuses_a_forged_one(
    tmp_path: Path, slack_api: SlackEmulator
) -> None:
    url = f"sqlite:///{tmp_path / 'pg.db'}"
    await asyncio.to_thread(migrate, url, tmp_path)
    env = base_env(
        url,
        PATCHGATE_SLACK_BOT_TOKEN=TOKEN,
        PATCHGATE_SLACK_SIGNING_SECRET=SECRET,
        PATCHGATE_SLACK_API_URL=slack_api.url,
    )
    body = urllib.parse.urlencode(
        {"team_id": "T0TEAM", "user_id": "U0SOMEONE", "command": "/patch", "text": "help"}
    )
    with ServeProcess(env, cwd=tmp_path) as serve:
        await asyncio.to_thread(serve.wait_ready)
        status, text = await asyncio.to_thread(_post, serve.port, body, signed_request(body))
        assert status == 200, serve.log()
        assert "/patch run PLAN [--dry-run]" in text
        forged = signed_request(body, secret="wrong")
        status, _ = await asyncio.to_thread(_post, serve.port, body, forged)
        assert status == 401
