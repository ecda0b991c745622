"""Build the Bolt ``AsyncApp``: verification, replay guard, cached authorization, features.

One route for every request, in both modes: ``bot.server`` (HTTP) and Bolt's Socket Mode
handler hand it to ``AsyncApp.async_dispatch``. In HTTP mode the ``before_authorize``
middleware :class:`bot.slack.guard.HttpGuard` verifies it (instead of Bolt's request
verification, to refuse with PatchGate's audited reasons), refuses replays, and answers
journaled Approve clicks itself once they are durable (``bot.slack.journal``). Bolt's
other built-in middleware stays on: ``ssl_check`` and ``url_verification`` are requests
Slack really sends in HTTP mode. ``authorize=`` returns cached installation data: the bot
token from Settings, and the bot user id from one lazy ``auth.test`` whose failure (a
Slack outage) does not stop clicks from working.

Listeners answer when they return (``process_before_response``); their work after the
ack runs deferred (``bot.slack.later``).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import journal, security, texts
from bot.slack.approvals import handlers as approvals
from bot.slack.commands import handlers as commands
from bot.slack.deps import SlackDeps
from bot.slack.exceptions import handlers as exceptions
from bot.slack.guard import HttpGuard
from bot.slack.home import handlers as home
from bot.slack.later import defer, tell_error

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


@dataclass(frozen=True)
class SlackApp:
    """The Bolt app and what ``bot.server`` needs besides it in HTTP mode: the guard (its
    refusal audit for bodies Bolt never sees, its count of requests waiting for their
    answer) and the journal it sweeps."""

    bolt: AsyncApp
    guard: HttpGuard
    journal: journal.Journal
    deps: SlackDeps | None = None

    async def warm(self) -> None:
        """Compute the fleet view once at start (a 10,000-host fleet's first
        ``/patch status`` no longer computes it inside its ack); never raises."""
        if self.deps is None:
            return
        try:
            await self.deps.fleet()
        except Exception:  # the first command computes it and says what is wrong
            log.warning("could not compute the fleet view at start", exc_info=True)


def build_bolt_app(deps: SlackDeps, *, signing_secret: str, token: str) -> SlackApp:
    refusals = security.RefusalAudit(deps.db, deps.clock)
    replay = security.ReplayGuard(deps.db, deps.clock, one_writer=deps.one_writer)
    requests = journal.Journal(deps)
    guard = HttpGuard(signing_secret, replay, refusals, requests, quiet=deps.quiet)
    app = AsyncApp(
        signing_secret=signing_secret,
        client=deps.client,
        authorize=cached_authorize(deps.client, token),
        # HttpGuard verifies (with PatchGate's audited refusals) instead of Bolt
        request_verification_enabled=False,
        before_authorize=guard,
        # A listener's answer is sent when it returns (work after its ack is deferred:
        # bot.slack.later), so no answer waits for Bolt's 10 ms poll for the ack.
        process_before_response=True,
    )

    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        await tell_error(deps, error, body)

    app.error(on_error)
    commands.register(app, deps)
    approvals.register(app, deps, requests)
    home.register(app, deps)
    exceptions.register(app, deps)

    # Last: a click on an action no feature registered (an old message, a forged payload
    # signed by Slack for another app version) is acked, explained and audited, not a 404.
    async def unknown_action(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        defer(deps, body, lambda: explain_unknown(body))

    async def explain_unknown(body: dict[str, Any]) -> None:
        action = (body.get("actions") or [{}])[0]
        user = (body.get("user") or {}).get("id")
        await refusals.signed(
            "unknown_action", f"action_id {str(action.get('action_id'))[:80]!r}", user=user
        )
        channel = (body.get("channel") or {}).get("id")
        if user and channel:
            await deps.client.chat_postEphemeral(
                channel=channel, user=user, text=texts.UNKNOWN_BUTTON
            )

    app.action(re.compile(".*"))(unknown_action)
    return SlackApp(app, guard, requests, deps)
