"""The ``/patch`` handler: parse, run (persisting what it decides), then ack the reply."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.slack import texts
from bot.slack.commands import builtin, discovery, schedule, zones
from bot.slack.commands.ids import CommandId
from bot.slack.commands.parser import parse
from bot.slack.commands.registry import Invocation, Later, Registry, Reply, UsageError
from bot.slack.deps import SlackDeps
from bot.slack.exceptions import command as exception_command
from bot.slack.later import defer
from bot.slack.reports import command as report_command
from workflows.errors import PatchGateError

log = logging.getLogger("patchgate.slack")


def default_registry() -> Registry:
    registry = Registry()
    builtin.register(registry)
    schedule.register(registry)
    exception_command.register(registry)
    discovery.register(registry)
    report_command.register(registry)
    zones.register(registry)
    return registry


def usage_reply(error: UsageError) -> dict[str, Any]:
    return {"text": texts.usage(error, error.usage), "response_type": "ephemeral"}


def register(app: AsyncApp, deps: SlackDeps, registry: Registry | None = None) -> None:
    subcommands = registry or default_registry()

    async def handle_patch(ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            sub, parsed = parse(command.get("text") or "", subcommands)
        except UsageError as exc:
            await ack(**usage_reply(exc))
            return
        who = Invocation(
            user_id=command["user_id"],
            channel_id=command.get("channel_id"),
            trigger_id=command.get("trigger_id"),
        )
        try:
            reply = await sub.run(deps, who, parsed)
        except UsageError as exc:
            reply = usage_reply(exc)
        if isinstance(reply, Later):
            await ack(**reply.ack)
            later = reply
            defer(
                deps,
                command,
                lambda: deps.after_ack(lambda: answer_later(deps, who, later), limited=False),
            )
            return
        await ack(**reply)

    app.command(CommandId.SLASH.value)(handle_patch)


async def answer_later(deps: SlackDeps, who: Invocation, later: Later) -> None:
    """Run the deferred work (after the ack) and post its reply to the person ephemerally."""
    try:
        reply: Reply = await later.work()
    except UsageError as exc:
        reply = usage_reply(exc)
    except PatchGateError as exc:
        reply = {"text": texts.refused(exc)}
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("/patch deferred work failed (reference %s)", ref)
        reply = {"text": texts.went_wrong(ref)}
    if who.channel_id is None:
        log.warning("no channel to answer %s in", who.user_id)
        return
    fields = {k: v for k, v in reply.items() if k in ("text", "blocks")}
    try:
        await deps.client.chat_postEphemeral(channel=who.channel_id, user=who.user_id, **fields)
    except Exception as exc:  # Slack down or the bot not in the channel: nothing to undo
        log.warning("could not post the /patch answer to %s: %s", who.user_id, exc)
