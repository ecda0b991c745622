"""``/patch report [--since DATE] [--until DATE] [--framework F]`` (operators).

Acks at once; the bundle is built after the ack in a worker thread with its own event
loop and database engine (so a quarter's bundle does not stall ``serve``) and kept in
``PATCHGATE_REPORT_DIR``. Its upload to the channel (Slack's external upload flow, with its
headline figures as the comment) is an outbox row (topic ``slack.upload``, the file's path
in the row, not its bytes: ``integrations/slack/uploads.py``), so Slack's failures are
retried like messages'. The person is told ephemerally that the bundle is built and being
posted, then that it was posted, or why not (once the row is dead).
A refusal (not an operator) is audited as ``report.refused``, like other refusals.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bot.reporting import build_for, parse_period, report_request, summary_lines
from bot.slack import texts
from bot.slack.commands.registry import (
    Invocation,
    Later,
    Registry,
    Reply,
    Subcommand,
    UsageError,
    ephemeral,
)
from bot.slack.deps import SlackDeps
from integrations.slack.uploads import TOPIC as UPLOAD_TOPIC
from integrations.slack.uploads import file_upload
from workflows import audit, outbox
from workflows.db import DatabaseURLs, unit_of_work
from workflows.errors import InputError
from workflows.gates import has_power
from workflows.reports import FRAMEWORKS, Bundle, ReportRequest

log = logging.getLogger("patchgate.slack")

USAGE = "report [--since DATE] [--until DATE] [--framework soc2|pci|hipaa|iso27001]"
OPTIONS = ("--since", "--until", "--framework")


@dataclass(frozen=True)
class ReportCommand:
    since: str | None = None
    until: str | None = None
    framework: str | None = None


def parse(args: Sequence[str]) -> ReportCommand:
    words = list(args)
    values: dict[str, str] = {}
    while words:
        word = words.pop(0)
        name, _, inline = word.partition("=")
        if name not in OPTIONS:
            raise UsageError(texts.unexpected(word), usage=USAGE)
        if name in values:
            raise UsageError(texts.given_twice(name), usage=USAGE)
        value = inline or (words.pop(0) if words and not words[0].startswith("--") else "")
        if not value:
            raise UsageError(texts.missing_after("a value", name), usage=USAGE)
        values[name] = value
    framework = values.get("--framework")
    if framework is not None and framework not in FRAMEWORKS:
        raise UsageError(texts.unknown_framework(framework, ", ".join(FRAMEWORKS)), usage=USAGE)
    return ReportCommand(values.get("--since"), values.get("--until"), framework)


def _build_in_thread(urls: DatabaseURLs, request: ReportRequest, out: Path) -> Bundle:
    return asyncio.run(build_for(urls, request, out))


async def deliver(deps: SlackDeps, who: Invocation, request: ReportRequest) -> Reply:
    """After the ack: build, keep on disk, upload to the channel; the reply is ephemeral."""
    out = deps.settings.report_dir
    bundle = await asyncio.to_thread(_build_in_thread, deps.db.urls, request, out)
    lines = summary_lines(bundle)
    period = bundle.manifest["period"]
    comment = (
        f"Evidence bundle for {period['since'][:10]} to {period['until'][:10]} (end excluded), "
        f"requested by <@{who.user_id}>\n"
        + "\n".join(f"• {line}" for line in lines)
        + f"\nmanifest SHA-256 `{bundle.manifest_sha256}` · check it with "
        "`patchgate report verify`"
    )
    assert who.channel_id is not None  # run() refuses a command without a channel
    payload = await asyncio.to_thread(  # reads and hashes the bundle: off the event loop
        partial(
            file_upload,
            bundle.path,
            channel=who.channel_id,
            initial_comment=comment,
            marker=bundle.manifest_sha256,
            requested_by=who.user_id,
        )
    )
    async with unit_of_work(deps.db) as session:
        await outbox.enqueue(
            session,
            key=f"report:{bundle.path.name}:{uuid.uuid4().hex[:12]}",
            topic=UPLOAD_TOPIC,
            payload=payload,
            at=deps.clock.now(),
        )
    log.info("queued the upload of %s to %s", bundle.path.name, who.channel_id)
    return ephemeral(texts.bundle_queued(bundle.path.name, out))


async def run(deps: SlackDeps, who: Invocation, cmd: ReportCommand) -> Reply | Later:
    actor = await deps.actor(who.user_id)
    if not has_power(actor, deps.operators):
        why = texts.not_an_operator(who.user_id)
        async with unit_of_work(deps.db) as session:
            await audit.append(
                session,
                kind="report.refused",
                at=deps.clock.now(),
                actor=who.user_id,
                data={"since": cmd.since, "until": cmd.until, "why": why},
            )
        return ephemeral(texts.no_entry(why))
    if who.channel_id is None:
        return ephemeral(texts.NO_CHANNEL_FOR_BUNDLE)
    try:
        period = parse_period(
            cmd.since, cmd.until, now=deps.clock.now(), zone=deps.settings.timezone
        )
    except InputError as exc:
        raise UsageError(str(exc), usage=USAGE) from None
    request = report_request(deps.settings, period, cmd.framework)
    return Later(
        ephemeral(texts.building_bundle(period.since, period.until)),
        partial(deliver, deps, who, request),
    )


def register(registry: Registry) -> None:
    registry.add(
        Subcommand(
            "report",
            USAGE,
            "build an evidence bundle (zip) and post it here (operators)",
            parse,
            run,
        )
    )
