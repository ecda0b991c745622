"""The ``/patch`` handler: parse, run (persisting what it decides), then ack the reply."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.slack.commands import builtin, schedule
from bot.slack.commands.ids import CommandId
from bot.slack.commands.parser import parse
from bot.slack.commands.registry import Invocation, Registry, UsageError
from bot.slack.deps import SlackDeps
from bot.slack.exceptions import command as exception_command


def default_registry() -> Registry:
    registry = Registry()
    builtin.register(registry)
    schedule.register(registry)
    exception_command.register(registry)
    return registry


def usage_reply(error: UsageError) -> dict[str, Any]:
    text = f":warning: {error}"
    if error.usage:
        text += f"\nUsage: `/patch {error.usage}`"
    text += "\n`/patch help` lists every subcommand."
    return {"text": text, "response_type": "ephemeral"}


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
        await ack(**reply)

    app.command(CommandId.SLASH.value)(handle_patch)
