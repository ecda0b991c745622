"""Build the Bolt ``AsyncApp``: verification, replay guard, cached authorization, features.

Bolt always verifies the v0 signature and the timestamp window (``signing_secret``);
:class:`bot.slack.security.HttpGuard` (run by ``/slack/events`` on the raw body, before
Bolt parses it) refuses missing headers, stale timestamps, bad signatures and signatures
seen before (memory first, then batched inserts into the shared table), and audits the
refusals. Bolt's built-in middleware stays on: its
whole dispatch costs about 0.4 ms per request here, and ``ssl_check`` /
``url_verification`` are requests Slack really sends in HTTP mode. ``authorize=``
returns cached installation data: the bot token from Settings, and the bot user id from
one lazy ``auth.test`` whose failure (a Slack outage) does not stop clicks from working.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.listener.async_listener import AsyncListener
from slack_bolt.listener.asyncio_runner import AsyncioListenerRunner
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import journal, security
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


class _SignallingAck(AsyncAck):
    """An ``ack`` that wakes whoever waits for the response the moment it is set."""

    def __init__(self) -> None:
        self.acked = asyncio.Event()
        self._response: BoltResponse | None = None
        super().__init__()  # type: ignore[no-untyped-call]

    @property
    def response(self) -> BoltResponse | None:
        return self._response

    @response.setter
    def response(self, value: BoltResponse | None) -> None:
        self._response = value
        if value is not None:
            self.acked.set()


class PromptAckRunner(AsyncioListenerRunner):
    """Bolt's listener runner, answering the moment the listener calls ``ack()``.

    Bolt runs a listener as a task and polls ``ack.response`` every 10 ms until it is
    set. Under a burst of requests that poll adds up to 10 ms to each answer and wakes
    every waiting request 100 times a second on the one event loop. Here the ack sets an
    event instead. Everything else (error handler, completion handler, code after
    ``ack()`` running after the answer) is Bolt's behaviour; lazy listeners and
    ``process_before_response`` go through Bolt's own runner.
    """

    _tasks: set[asyncio.Future[None]] = set()

    async def run(
        self,
        request: AsyncBoltRequest,
        response: BoltResponse,
        listener_name: str,
        listener: AsyncListener,
        starting_time: float | None = None,
    ) -> BoltResponse | None:
        if self.process_before_response or listener.lazy_functions or request.lazy_only:
            return await super().run(request, response, listener_name, listener, starting_time)
        ack = _SignallingAck()
        request.context["ack"] = ack
        if listener.auto_acknowledgement:
            await ack()

        async def run_listener(response: BoltResponse | None) -> None:
            try:
                await self.listener_start_handler.handle(request=request, response=response)
                await listener.run_ack_function(request=request, response=response)  # type: ignore[arg-type]
            except Exception as e:
                if response is None:
                    response = BoltResponse(status=500)
                response.status = 500
                if ack.response is not None:  # already acknowledged
                    response = None
                await self.listener_error_handler.handle(
                    error=e,
                    request=request,
                    response=response,
                )
                ack.response = response
            finally:
                await self.listener_completion_handler.handle(request=request, response=response)

        task = asyncio.ensure_future(run_listener(response))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        acked = asyncio.ensure_future(ack.acked.wait())
        await asyncio.wait(
            {task, acked}, timeout=listener.ack_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        acked.cancel()
        if response is None and ack.response is None:
            self.logger.warning(f"{listener_name} did not call ack()")
            return None
        return response if response is not None else ack.response


def build_bolt_app(deps: SlackDeps, *, signing_secret: str, token: str) -> AsyncApp:
    app = AsyncApp(
        signing_secret=signing_secret,
        client=deps.client,
        authorize=cached_authorize(deps.client, token),
        request_verification_enabled=True,
    )
    # Answer as soon as a listener acks (see PromptAckRunner); same constructor arguments.
    app._async_listener_runner.__class__ = PromptAckRunner
    refusals = security.RefusalAudit(deps.db, deps.clock)
    replay = security.ReplayGuard(deps.db, deps.clock, one_writer=deps.one_writer)
    requests = journal.Journal(deps)
    guard = security.HttpGuard(
        signing_secret,
        replay,
        refusals,
        classify=journal.classify,
        journal=requests,
        quiet=deps.quiet,
    )
    security.attach(app, guard)

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
    approvals.register(app, deps, requests)
    home.register(app, deps)
    exceptions.register(app, deps)

    # Last: a click on an action no feature registered (an old message, a forged payload
    # signed by Slack for another app version) is acked, explained and audited, not a 404.
    async def unknown_action(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = (body.get("user") or {}).get("id")
        await refusals.signed(
            "unknown_action", f"action_id {str(action.get('action_id'))[:80]!r}", user=user
        )
        channel = (body.get("channel") or {}).get("id")
        if user and channel:
            await deps.client.chat_postEphemeral(
                channel=channel, user=user, text="This button is not one PatchGate understands."
            )

    app.action(re.compile(".*"))(unknown_action)
    return app
