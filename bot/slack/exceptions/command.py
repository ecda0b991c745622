"""``/patch exception HOST [PACKAGE|CVE]``: opens the exception form at once.

The second word is a CVE id when it looks like one (the package then comes from the
host's latest assessment, as with the CLI's ``--cve``), a package name otherwise;
``--package PKG`` and ``--cve CVE`` say it explicitly. ``--plan PLAN`` takes the maximum
length, the Jira project and issue type and the lapse channel from that plan, as the
CLI's ``--plan`` does (otherwise ``PATCHGATE_EXCEPTION_MAX_DAYS`` and the defaults).

``views.open`` is called directly while the command's trigger is valid (3 seconds), not
through the outbox. Granting needs operator rights: a refusal is answered ephemerally
and audited (``exception.refused``, as the domain records it) and no form opens; the
domain checks again when the form is submitted (``bot/slack/exceptions/handlers.py``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.slack import texts
from bot.slack.commands.registry import (
    Invocation,
    Registry,
    Reply,
    Subcommand,
    UsageError,
    ephemeral,
)
from bot.slack.deps import SlackDeps
from bot.slack.exceptions.blocks import ExceptionForm, exception_modal
from workflows import audit
from workflows.db import unit_of_work
from workflows.errors import InputError
from workflows.gates import has_power

log = logging.getLogger("patchgate.slack")

USAGE = "exception HOST [PACKAGE|CVE] [--package PKG] [--cve CVE] [--plan PLAN]"
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)


@dataclass(frozen=True)
class ExceptionCommand:
    host: str
    package: str | None
    cve: str | None = None
    plan: str | None = None


@dataclass(frozen=True)
class PlanTerms:
    """What a named plan sets for an exception (the settings' defaults without one)."""

    max_days: int
    project: str | None = None
    issue_type: str | None = None
    channel: str | None = None


async def plan_terms(deps: SlackDeps, name: str | None) -> PlanTerms:
    """Raises InputError for a plan that does not exist (or a broken plans directory)."""
    if name is None:
        return PlanTerms(max_days=deps.settings.exception_max_days)
    plans = await asyncio.to_thread(deps.plans)  # parsing stays off the event loop
    if name not in plans:
        raise InputError(texts.no_plan_named(name))
    plan = plans[name].plan
    jira = plan.jira
    return PlanTerms(
        max_days=(jira.max_exception_days if jira else None) or deps.settings.exception_max_days,
        project=jira.project if jira else None,
        issue_type=jira.issue_type if jira else None,
        channel=plan.slack.channel if plan.slack else None,
    )


def _option(words: list[str], name: str, what: str) -> str | None:
    if name not in words:
        return None
    i = words.index(name)
    if i + 1 >= len(words) or words[i + 1].startswith("-"):
        raise UsageError(texts.missing_after(what, name), usage=USAGE)
    value = words[i + 1]
    del words[i : i + 2]
    return value


def parse(args: Sequence[str]) -> ExceptionCommand:
    words = list(args)
    package = _option(words, "--package", "a package name")
    cve = _option(words, "--cve", "a CVE id")
    plan = _option(words, "--plan", "a plan name")
    unknown = [w for w in words if w.startswith("-")]
    if unknown:
        raise UsageError(texts.unknown_option(unknown[0]), usage=USAGE)
    if len(words) == 2:
        if _CVE.match(words[1]) and cve is None:
            cve = words.pop()
        elif not _CVE.match(words[1]) and package is None:
            package = words.pop()
    if len(words) != 1:
        what = texts.HOST_MISSING if not words else texts.unexpected(" ".join(words[1:]))
        raise UsageError(what, usage=USAGE)
    return ExceptionCommand(words[0], package, cve.upper() if cve else None, plan)


async def run(deps: SlackDeps, who: Invocation, cmd: ExceptionCommand) -> Reply:
    actor = await deps.actor(who.user_id)
    if not has_power(actor, deps.operators):
        why = texts.not_an_operator(who.user_id)
        async with unit_of_work(deps.db) as session:
            await audit.append(
                session,
                kind="exception.refused",
                at=deps.clock.now(),
                actor=who.user_id,
                data={"host": cmd.host, "package": cmd.package, "cve": cmd.cve, "why": why},
            )
        return ephemeral(texts.no_entry(why))
    if not who.trigger_id:
        return ephemeral(texts.NO_TRIGGER)
    try:
        terms = await plan_terms(deps, cmd.plan)
    except InputError as exc:
        return ephemeral(texts.refused(exc))
    form = ExceptionForm(
        host=cmd.host, package=cmd.package, cve=cmd.cve, plan=cmd.plan, channel_id=who.channel_id
    )
    view = exception_modal(form, owner=who.user_id, max_days=terms.max_days)
    try:
        await deps.client.views_open(trigger_id=who.trigger_id, view=view)
    except Exception as exc:  # the trigger expired or Slack is down: say so, nothing written
        log.warning("views.open for the exception form failed: %s", exc)
        return ephemeral(texts.FORM_NOT_OPENED)
    return {}


def register(registry: Registry) -> None:
    registry.add(
        Subcommand(
            "exception",
            USAGE,
            "leave a host (or a package on it) out of rollouts until a date (operators)",
            parse,
            run,
        )
    )
