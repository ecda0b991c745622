"""``/patch hosts [SELECTOR]``, ``/patch assess [SELECTOR] [--top N]`` and
``/patch emergency CVE [--plan PLAN]``: the Slack faces of ``patchgate inventory show``,
``patchgate assess`` and ``patchgate emergency``.

They call what the CLI calls (``workflows.assessment.latest/affected_by``,
``workflows.requests.start_rollout``, ``workflows.assessment.coverage_gaps`` and
``workflows.plans.emergency_plan``). Reading the inventory and the stored
assessments can take a while on a large fleet, so each acks at once and posts its answer
ephemerally after the ack (:class:`~bot.slack.commands.registry.Later`). A bad selector,
CVE id or option is a usage error before anything runs. ``emergency`` refuses a non-
operator before the ack (audited, as ``start_rollout`` does) and the domain checks again
when it starts the rollout. Answers keep to Block Kit's limits: long lists are cut with
a count.

Also here: :func:`current_gaps` and :func:`gap_lines`, the fleet's coverage gaps (hosts
unreachable, never gathered, or with facts older than ``PATCHGATE_FACTS_MAX_AGE_HOURS``)
shown by ``/patch status`` and App Home.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

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
from bot.slack.fleet import HostRow, RowsKey
from integrations.slack.messages import MAX_BLOCKS, context, section, text_sections
from workflows import assessment
from workflows.db import read_only, unit_of_work
from workflows.errors import Conflict, Forbidden, PatchGateError, SelectorError
from workflows.gates import Actor, has_power
from workflows.hostos import inventory_build, inventory_family, os_label
from workflows.plans import PatchPlan, emergency_plan, parse_selector
from workflows.ports import InventoryHost
from workflows.requests import refuse, start_rollout

HOSTS_USAGE = "hosts [SELECTOR]"
ASSESS_USAGE = "assess [SELECTOR] [--top N]"
EMERGENCY_USAGE = "emergency CVE-YYYY-NNNN [--plan PLAN]"
HOSTS_SHOWN = 40
TOP_DEFAULT = 10
TOP_MAX = 30
NAMES_SHOWN = 20
GAPS_SHOWN = 12
CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}", re.IGNORECASE)


def _blocks_reply(summary: str, blocks: list[dict[str, Any]]) -> Reply:
    return {"text": summary, "blocks": blocks[:MAX_BLOCKS], "response_type": "ephemeral"}


def _selector(words: Sequence[str], usage: str) -> str:
    text = " ".join(words) or "all"
    try:
        parse_selector(text)
    except SelectorError as exc:
        raise UsageError(texts.bad_selector(exc), usage=usage) from None
    return text


def _names(names: Sequence[str], shown: int = NAMES_SHOWN) -> str:
    text = ", ".join(f"`{n}`" for n in names[:shown])
    return text + (texts.and_more(len(names) - shown) if len(names) > shown else "")


# --- shared: inventory, host rows, coverage gaps ---------------------------------------------


async def inventory_hosts(deps: SlackDeps, selector: str | None = None) -> list[InventoryHost]:
    """The inventory's hosts (read off the event loop: a large inventory takes a while)."""
    hosts = await asyncio.to_thread(deps.inventory.hosts)
    if selector is None:
        return list(hosts)
    parsed = parse_selector(selector)
    return [h for h in hosts if parsed.matches(h)]


async def current_gaps(deps: SlackDeps, rows: RowsKey | None = None) -> list[tuple[str, str]]:
    """The fleet's coverage gaps now: (host, why), as ``patchgate inventory refresh`` lists
    (shared between requests: ``bot.slack.fleet``)."""
    return list((await deps.fleet(rows)).gaps)


def gap_lines(gaps: Sequence[tuple[str, str]], *, shown: int = GAPS_SHOWN) -> str:
    """Coverage gaps as mrkdwn lines, cut after ``shown`` with the count of the rest."""
    if not gaps:
        return texts.NO_GAPS
    lines = [f"• `{host}`: {why[:120]}" for host, why in gaps[:shown]]
    if len(gaps) > shown:
        lines.append(texts.more_gaps(len(gaps) - shown))
    return "\n".join(lines)


async def gaps_section(deps: SlackDeps, rows: RowsKey | None = None) -> str:
    """The coverage-gap part of ``/patch status`` and App Home (never fails the whole view).
    ``rows``: ``bot.slack.fleet.rows_key`` if the caller read it already."""
    try:
        gaps = await current_gaps(deps, rows)
    except PatchGateError as exc:  # e.g. a broken inventory file: say so, show the rest
        return texts.gaps_unreadable(exc)
    return f"{texts.gaps_heading(len(gaps))}\n{gap_lines(gaps)}"


# --- hosts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hosts:
    selector: str


def parse_hosts(args: Sequence[str]) -> Hosts:
    return Hosts(_selector(args, HOSTS_USAGE))


def _host_line(host: InventoryHost, row: HostRow | None, gap: str | None) -> str:
    parts = [f"`{host.name}`"]
    family = inventory_family(host) or (row.os_family if row is not None else None)
    if row is not None and row.os_id:
        parts.append(os_label(family, row.os_id, row.os_version, row.build))
    elif family is not None:  # not yet seen: the inventory's word (a tool's import)
        parts.append(os_label(family, None, None, inventory_build(host)))
    if host.environment:
        parts.append(f"env {host.environment}")
    if host.criticality:
        parts.append(host.criticality)
    if host.internet_facing:
        parts.append("internet-facing")
    line = "• " + " · ".join(parts)
    return line + (f" — :warning: {gap[:200]}" if gap else "")


async def hosts_answer(deps: SlackDeps, cmd: Hosts) -> Reply:
    view = await deps.fleet()
    selector = parse_selector(cmd.selector)
    hosts = sorted((h for h in view.hosts if selector.matches(h)), key=lambda h: h.name)
    rows = view.rows
    names = {h.name for h in hosts}
    gaps = {name: why for name, why in view.gaps if name in names}
    summary = texts.hosts_match(len(hosts), cmd.selector, len(gaps))
    if not hosts:
        return ephemeral(summary + ".")
    lines = [_host_line(h, rows.get(h.name), gaps.get(h.name)) for h in hosts[:HOSTS_SHOWN]]
    blocks = [section(f"*{summary}*"), *text_sections("\n".join(lines), room=MAX_BLOCKS - 2)]
    if len(hosts) > HOSTS_SHOWN:
        blocks.append(context(texts.more_hosts(len(hosts) - HOSTS_SHOWN)))
    return _blocks_reply(summary, blocks)


async def run_hosts(deps: SlackDeps, who: Invocation, cmd: Hosts) -> Later:
    return Later(
        ephemeral(texts.looking_up_hosts(cmd.selector)),
        partial(hosts_answer, deps, cmd),
    )


# --- assess --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assess:
    selector: str
    top: int = TOP_DEFAULT


def parse_assess(args: Sequence[str]) -> Assess:
    words = list(args)
    top = TOP_DEFAULT
    if "--top" in words:
        i = words.index("--top")
        value = words[i + 1] if i + 1 < len(words) else ""
        if not (value.isascii() and value.isdigit() and len(value) <= 6) or not (
            1 <= int(value) <= TOP_MAX
        ):
            raise UsageError(texts.top_out_of_range(TOP_MAX), usage=ASSESS_USAGE)
        top = int(value)
        del words[i : i + 2]
    unknown = [w for w in words if w.startswith("--")]
    if unknown:
        raise UsageError(texts.unknown_option(unknown[0]), usage=ASSESS_USAGE)
    return Assess(_selector(words, ASSESS_USAGE), top)


def _finding_line(f: assessment.Finding) -> str:
    ids = ", ".join(f.cves or f.advisories) or "no advisory"
    if f.cves and f.advisories:
        ids = f"{', '.join(f.advisories)}: {ids}"
    facts = [f.severity or "severity unknown"]
    if f.known_exploited:
        facts.append("*known exploited*")
    if f.identity is not None and f.identity.kind == "update":  # a KB, not a version
        what = assessment.patch_label(f.package, f.candidate, f.identity.to_json())
        head = f"*{f.risk}* `{f.host}` {what}"
    else:
        head = f"*{f.risk}* `{f.host}` {f.package} {f.current or '?'} → {f.candidate}"
    return f"{head} — {ids[:300]} ({', '.join(facts)}): {'; '.join(f.reasons)[:300]}"


async def assess_answer(deps: SlackDeps, cmd: Assess) -> Reply:
    names = [h.name for h in await inventory_hosts(deps, cmd.selector)]
    async with read_only(deps.db) as session:
        stored = await assessment.latest(session, hosts=names) if names else {}
    missing = sorted(n for n in names if n not in stored)
    if not stored:
        return ephemeral(texts.no_assessment(len(names), cmd.selector))
    ranked = sorted(
        (f for _, items in stored.values() for f in items),
        key=lambda f: (-f.risk, f.host, f.package),
    )
    times = [at for at, _ in stored.values()]
    summary = texts.top_fixes(min(cmd.top, len(ranked)), len(ranked), len(stored), cmd.selector)
    blocks = [
        section(
            f"*{summary}*\nassessed {min(times):%Y-%m-%d %H:%M} to {max(times):%Y-%m-%d %H:%M} UTC"
        )
    ]
    if ranked:
        lines = "\n".join(_finding_line(f) for f in ranked[: cmd.top])
        blocks += text_sections(lines, room=MAX_BLOCKS - 3)
    else:
        blocks.append(section(texts.NO_FIXES_PENDING))
    if missing:
        blocks.append(context(texts.not_assessed_yet(len(missing), _names(missing))))
    return _blocks_reply(summary, blocks)


async def run_assess(deps: SlackDeps, who: Invocation, cmd: Assess) -> Later:
    return Later(
        ephemeral(texts.ranking_assessments(cmd.selector)),
        partial(assess_answer, deps, cmd),
    )


# --- emergency -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Emergency:
    cve: str
    plan: str | None = None


def parse_emergency(args: Sequence[str]) -> Emergency:
    words = list(args)
    plan: str | None = None
    if "--plan" in words:
        i = words.index("--plan")
        if i + 1 >= len(words) or words[i + 1].startswith("-"):
            raise UsageError(texts.PLAN_MISSING_AFTER_PLAN, usage=EMERGENCY_USAGE)
        plan = words[i + 1]
        del words[i : i + 2]
    unknown = [w for w in words if w.startswith("--")]
    if unknown:
        raise UsageError(texts.unknown_option(unknown[0]), usage=EMERGENCY_USAGE)
    if not words:
        raise UsageError(texts.CVE_MISSING, usage=EMERGENCY_USAGE)
    if len(words) > 1:
        raise UsageError(texts.unexpected(" ".join(words[1:])), usage=EMERGENCY_USAGE)
    if not CVE_ID.fullmatch(words[0]):
        raise UsageError(texts.not_a_cve(words[0]), usage=EMERGENCY_USAGE)
    return Emergency(words[0].upper(), plan)


async def _emergency_plan_named(deps: SlackDeps, name: str | None) -> PatchPlan | str:
    """The plan to use, or why there is none (the CLI's rule: the only one with a profile)."""
    plans = await asyncio.to_thread(deps.plans)  # parsing stays off the event loop
    if name is None:
        candidates = sorted(n for n, p in plans.items() if p.plan.emergency is not None)
        if len(candidates) != 1:
            return texts.name_the_emergency_plan(", ".join(candidates))
        name = candidates[0]
    if name not in plans:
        return texts.no_plan(name, ", ".join(sorted(plans)) or texts.NONE)
    plan = plans[name].plan
    if plan.emergency is None:
        return texts.no_emergency_profile(name)
    return plan


async def start_emergency(deps: SlackDeps, actor: Actor, plan: PatchPlan, cve: str) -> Reply:
    async with read_only(deps.db) as session:
        stored = await assessment.latest(session)
    affected = assessment.affected_by(stored, cve)
    if not affected:
        return ephemeral(texts.nothing_affected(cve, len(stored)))
    hosts = sorted(affected)
    packages = sorted({f.package for fixes in affected.values() for f in fixes})
    narrowed = emergency_plan(plan, hosts, packages)
    try:
        async with unit_of_work(deps.db) as session:
            result = await start_rollout(
                session,
                plan=narrowed,
                actor=actor,
                operators=deps.operators,
                now=deps.clock.now(),
                emergency=True,
                cve=cve,
            )
            number = None if isinstance(result, Forbidden) else result.id
    except Conflict as exc:
        return ephemeral(texts.no_entry(exc))
    if number is None:
        return ephemeral(texts.no_entry(result))
    return ephemeral(
        texts.emergency_started(number, plan.name, cve, len(hosts), _names(hosts), _names(packages))
    )


async def run_emergency(deps: SlackDeps, who: Invocation, cmd: Emergency) -> Reply | Later:
    actor = await deps.actor(who.user_id)
    if not has_power(actor, deps.operators):
        why = texts.not_an_operator(who.user_id)
        async with unit_of_work(deps.db) as session:
            await refuse(session, actor=actor, action="emergency", why=why, now=deps.clock.now())
        return ephemeral(texts.no_entry(why))
    plan = await _emergency_plan_named(deps, cmd.plan)
    if isinstance(plan, str):
        return ephemeral(texts.refused(plan))
    return Later(
        ephemeral(texts.finding_affected(cmd.cve)),
        partial(start_emergency, deps, actor, plan, cmd.cve),
    )


def register(registry: Registry) -> None:
    registry.add(
        Subcommand(
            "hosts",
            HOSTS_USAGE,
            "inventory hosts matching a selector, with their coverage gaps",
            parse_hosts,
            run_hosts,
        )
    )
    registry.add(
        Subcommand(
            "assess",
            ASSESS_USAGE,
            "the riskiest pending fixes from the stored assessments, with the reasons",
            parse_assess,
            run_assess,
        )
    )
    registry.add(
        Subcommand(
            "emergency",
            EMERGENCY_USAGE,
            "an expedited rollout for one CVE on the hosts it affects (operators)",
            parse_emergency,
            run_emergency,
        )
    )
