"""Build the Bolt ``AsyncApp``: verification, replay guard, cached authorization, features.

Bolt always verifies the v0 signature and the timestamp window (``signing_secret``);
:func:`bot.slack.security.replay_guard` refuses a signature seen before. ``authorize=``
returns cached installation data: the bot token from Settings, and the bot user id from
one lazy ``auth.test`` whose failure (a Slack outage) does not stop clicks from working.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import security
from bot.slack.approvals import handlers as approvals
from bot.slack.commands import handlers as commands
from bot.slack.deps import SlackDeps
from bot.slack.exceptions import handlers as exceptions
from bot.slack.home import handlers as home
from workflows.errors import PatchGateError

log = logging.getLogger("patchgate.slack")

AUTH_RETRY_SECONDS = 60.0


def cached_authorize(client: AsyncWebClient, token: str) -> Any:
    state: dict[str, Any] = {"bot_user_id": None, "bot_id": None, "next_try": 0.0}

    async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        if state["bot_user_id"] is None and time.monotonic() >= state["next_try"]:
            state["next_try"] = time.monotonic() + AUTH_RETRY_SECONDS
            try:
                response = await client.auth_test(token=token)
                state["bot_user_id"] = response.get("user_id")
                state["bot_id"] = response.get("bot_id")
            except Exception as exc:  # Slack down: clicks still work, retried later
                log.warning("auth.test failed (%s); continuing without the bot user id", exc)
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=token,
            bot_user_id=state["bot_user_id"],
            bot_id=state["bot_id"],
        )

    return authorize


def build_bolt_app(deps: SlackDeps, *, signing_secret: str, token: str) -> AsyncApp:
    app = AsyncApp(
        signing_secret=signing_secret,
        client=deps.client,
        authorize=cached_authorize(deps.client, token),
        request_verification_enabled=True,
    )
    app.middleware(security.replay_guard(deps.db, deps.clock))

    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        user = (body.get("user") or {}).get("id") or body.get("user_id")
        channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
        if isinstance(error, PatchGateError):
            text = f":warning: {error}"
            log.warning("Slack request refused: %s", error)
        else:
            ref = uuid.uuid4().hex[:8]
            log.error("Slack handler failed (reference %s)", ref, exc_info=error)
            text = f":warning: Something went wrong (reference `{ref}`)."
        if user and channel:
            try:
                await deps.client.chat_postEphemeral(channel=channel, user=user, text=text)
            except Exception:
                log.warning("could not tell %s about the error", user)

    app.error(on_error)
    commands.register(app, deps)
    approvals.register(app, deps)
    home.register(app, deps)
    exceptions.register(app, deps)
    return app
