"""Notifications (``workflows.notify``'s typed events) rendered as Slack messages.

Block Kit's limits are respected here: at most 50 blocks, at most 3,000 characters per
section text; large content is summarised (the full detail is in the thread). The
Approve / Reject buttons carry a :class:`GateRef` (rollout, gate, patch-set hash) as
JSON, parsed back by the approvals handlers in ``bot/slack/approvals``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from workflows.notify import (
    ExceptionApplied,
    GateClosed,
    GateOpened,
    Notification,
    PackageChange,
    ParentPosted,
    ParentUpdated,
    RingResults,
    RollbackAlert,
    RollbackAlertUpdate,
    RolloutSummary,
    TicketRef,
    ZoneAlert,
    texts,
)

MAX_BLOCKS = 50
SECTION_LIMIT = 3000
TEXT_LIMIT = 3000  # the notification fallback text; Slack's hard limit is 40,000


class GateAction(StrEnum):
    """The action and block ids of a readiness message (the Slack app's, shared with bot/)."""

    APPROVE = "gate_approve"
    REJECT = "gate_reject"
    ACTIONS_BLOCK = "gate_actions"


class GateRef(BaseModel):
    """What a readiness message's buttons carry: which decision it asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rollout_id: int
    gate_id: int
    patchset_hash: str

    def dump(self) -> str:
        return self.model_dump_json()


Message = dict[str, Any]  # text + blocks, ready for chat.postMessage / chat.update


def clip(text: str, limit: int = SECTION_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text)}]}


def text_sections(text: str, *, room: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """Split long text at line ends into sections under the limit, at most ``room``."""
    blocks: list[dict[str, Any]] = []
    chunk = ""
    for line in text.splitlines() or [""]:
        candidate = f"{chunk}\n{line}" if chunk else line
        if len(candidate) > SECTION_LIMIT - 40 and chunk:
            blocks.append(section(chunk))
            chunk = line
        else:
            chunk = candidate
    blocks.append(section(chunk or " "))
    if len(blocks) > room:
        blocks = [*blocks[: room - 1], section("… (shortened; see `patchgate rollout show`)")]
    return blocks


def plain(text: str) -> Message:
    return {"text": clip(text, TEXT_LIMIT), "blocks": text_sections(text)}


STATE_ICONS = {
    "scheduled": ":calendar:",
    "assessing": ":mag:",
    "running": ":arrows_counterclockwise:",
    "waiting_window": ":hourglass:",
    "awaiting_approval": ":raised_hand:",
    "succeeded": ":white_check_mark:",
    "succeeded_with_failures": ":warning:",
    "failed": ":x:",
    "rolled_back": ":rewind:",
    "rejected": ":no_entry:",
    "aborted": ":octagonal_sign:",
}


def parent(event: ParentPosted | ParentUpdated) -> Message:
    """The rollout's parent message: first post, and every in-place update."""
    state = event.state if isinstance(event, ParentUpdated) else None
    head = f"{STATE_ICONS.get(str(state), '')} *{state}*  ".lstrip() if state else ""
    text = f"{head}{event.text}"
    blocks = [section(text)]
    reason = event.reason if isinstance(event, ParentUpdated) else None
    if reason:
        blocks.append(context(texts.mrkdwn(reason)))
    return {"text": clip(text, TEXT_LIMIT), "blocks": blocks}


def _results_line(results: RingResults) -> str:
    counts = results.counts
    ok = counts.get("healthy", 0)
    failed = sum(counts.get(s, 0) for s in ("failed", "unhealthy", "unreachable"))
    rolled = counts.get("rolled_back", 0) + counts.get("rollback_failed", 0)
    parts = [f"{ok} ok", f"{failed} failed", f"{rolled} rolled back"]
    if counts.get("excepted"):
        parts.append(f"{counts['excepted']} excepted")
    if counts.get("up_to_date"):
        parts.append(f"{counts['up_to_date']} already up to date")
    line = f"*Ring {results.ring}*: " + ", ".join(parts)
    if results.duration_seconds is not None:
        line += f" in {_duration(results.duration_seconds)}"
    if results.health is not None:
        line += f"; health checks {results.health.ok}/{results.health.total} passed"
    return line


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{round(seconds / 60)}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def package_lines(packages: Sequence[PackageChange], *, limit: int = SECTION_LIMIT - 200) -> str:
    """``name from -> to`` lines, shortened to fit one section."""
    lines = []
    for pkg in packages:
        if pkg.label:  # a KB: "KB5034441 — 2024-01 Cumulative Update …", no versions
            rest = pkg.label.removeprefix(pkg.name)
            line = f"`{pkg.name}`{rest}" if rest != pkg.label else f"`{pkg.name}` {pkg.label}"
        else:
            line = f"`{pkg.name}` {pkg.from_ or '(new)'} → {pkg.to}"
        if pkg.advisories:
            line += f" ({', '.join(pkg.advisories)})"
        lines.append(line)
    out = ""
    for i, line in enumerate(lines):
        if len(out) + len(line) + 1 > limit:
            return out + f"\n… and {len(lines) - i} more packages"
        out = f"{out}\n{line}" if out else line
    return out or "no package changes"


def gate_summary_blocks(event: GateOpened | GateClosed) -> list[dict[str, Any]]:
    blocks = [section(event.text)]
    if isinstance(event, GateOpened):
        if event.previous_ring is not None:
            blocks.append(section(_results_line(event.previous_ring)))
        if event.packages is not None:
            blocks.append(section("*Packages*\n" + package_lines(event.packages)))
        if event.untested_platforms:
            blocks.append(
                section(
                    ":warning: Not tested in an earlier ring: "
                    + ", ".join(event.untested_platforms)
                )
            )
    blocks.append(
        context(
            f"Patch set `{(event.patchset_hash or '')[:12]}`"
            f" · gate {event.gate_id}"
            f" · rollout #{event.rollout_id}"
        )
    )
    return blocks


def gate_opened(event: GateOpened) -> Message:
    blocks = gate_summary_blocks(event)
    if event.gate_kind == "approval":
        ref = GateRef(
            rollout_id=event.rollout_id,
            gate_id=event.gate_id,
            patchset_hash=event.patchset_hash or "",
        ).dump()
        blocks.append(
            {
                "type": "actions",
                "block_id": GateAction.ACTIONS_BLOCK,
                "elements": [
                    {
                        "type": "button",
                        "action_id": GateAction.APPROVE,
                        "text": {"type": "plain_text", "text": "Approve"},
                        "style": "primary",
                        "value": ref,
                    },
                    {
                        "type": "button",
                        "action_id": GateAction.REJECT,
                        "text": {"type": "plain_text", "text": "Reject"},
                        "style": "danger",
                        "value": ref,
                    },
                ],
            }
        )
    return {"text": clip(event.text, TEXT_LIMIT), "blocks": blocks}


def _when(value: str | None) -> str:
    if not value:
        return ""
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return f" at {at:%Y-%m-%d %H:%M} UTC"


def gate_closed(event: GateClosed) -> Message:
    """The readiness message once decided: the buttons replaced by the decision."""
    state = event.state
    by = event.decided_by
    who = f"<@{by}>" if by and by != "patchgate" else "PatchGate"
    if state == "approved":
        line = f":white_check_mark: *Approved* by {who}{_when(event.decided_at)}"
        voters = [v for v in event.approvers if v != by]
        if voters:
            line += " (with " + ", ".join(f"<@{v}>" for v in voters) + ")"
    elif state == "expired":
        line = f":hourglass: *Expired*{_when(event.decided_at)}: no decision in time"
    else:
        line = f":no_entry: *Rejected* by {who}{_when(event.decided_at)}"
        if event.reason:
            line += f": {texts.mrkdwn(event.reason)}"
    blocks = [*gate_summary_blocks(event), section(line)]
    return {"text": clip(f"{event.text} — {state}", TEXT_LIMIT), "blocks": blocks}


def alert(
    event: RollbackAlert | RollbackAlertUpdate, *, group: str | None, link: str | None
) -> Message:
    mention = f"<!subteam^{group}> " if group else ""
    text = f"{mention}:rotating_light: {event.text}"
    tickets = event.tickets
    blocks = text_sections(text, room=MAX_BLOCKS - 2)
    if tickets:
        blocks.append(section(ticket_lines(tickets)))
    if link:
        blocks.append(context(f"<{link}|Rollout #{event.rollout_id} thread>"))
    keys = ", ".join(t.key for t in tickets[:20])
    fallback = f"{text} (Jira: {keys})" if keys else text
    return {"text": clip(fallback, TEXT_LIMIT), "blocks": blocks}


def zone_alert(event: ZoneAlert, *, group: str | None) -> Message:
    """A zone without a live worker (on-call mentioned), or its recovery (no mention)."""
    if event.back:
        text = f":white_check_mark: {event.text}"
    else:
        mention = f"<!subteam^{group}> " if group else ""
        text = f"{mention}:rotating_light: {event.text}"
    return {"text": clip(text, TEXT_LIMIT), "blocks": text_sections(text, room=MAX_BLOCKS)}


def summary(event: RolloutSummary) -> Message:
    facts = event.summary
    text = event.text
    counts = facts.counts
    lines = [
        f"*Patched*: {counts.get('healthy', 0)}  ·  *failed*: "
        f"{sum(counts.get(s, 0) for s in ('failed', 'unhealthy', 'unreachable'))}  ·  "
        f"*rolled back*: {counts.get('rolled_back', 0)}  ·  *excepted*: "
        f"{counts.get('excepted', 0)}  ·  *skipped*: {counts.get('skipped', 0)}"
    ]
    if facts.duration_seconds is not None:
        lines.append(f"*Duration*: {_duration(facts.duration_seconds)}")
    if facts.time_to_last_patched_seconds is not None:
        lines.append(
            f"*Start to last host patched*: {_duration(facts.time_to_last_patched_seconds)}"
        )
    blocks = [section(text), section("\n".join(lines))]
    if facts.packages:
        blocks.append(section("*Packages*\n" + package_lines(facts.packages)))
    if facts.exceptions:
        blocks.append(section(exception_lines(facts.exceptions)))
    return {"text": clip(text, TEXT_LIMIT), "blocks": blocks}


def exception_lines(items: Sequence[ExceptionApplied], *, limit: int = SECTION_LIMIT - 100) -> str:
    """Hosts and packages an active exception left out: owner, expiry, ticket, reason."""
    hosts = sum(1 for x in items if not x.package)
    held = len(items) - hosts
    head = "*Left out by exceptions*: " + ", ".join(
        part
        for part in (
            f"{hosts} host{'s' if hosts != 1 else ''}" if hosts else "",
            f"{held} package{'s' if held != 1 else ''} held" if held else "",
        )
        if part
    )
    out = head
    for i, item in enumerate(items):
        what = f"`{item.host}`" + (
            f" package `{item.package}`" if item.package else " (whole host)"
        )
        if item.exception_id is None:
            line = f"• {what}: exception not found"
        else:
            owner = f"<@{item.owner}>" if item.owner else "?"
            until = str(item.expires_at or "?")[:10]
            ticket = item.ticket_key or "ticket pending"
            cve = f" ({item.cve})" if item.cve else ""
            reason = texts.mrkdwn(clip(item.reason or "", 120))
            line = (
                f"• {what}{cve}: exception #{item.exception_id}, owner {owner}, "
                f"until {until}, {ticket}: {reason}"
            )
        if len(out) + len(line) + 1 > limit:
            return out + f"\n… and {len(items) - i} more (`patchgate exception list`)"
        out = f"{out}\n{line}"
    return out


def ticket_lines(tickets: Sequence[TicketRef], *, limit: int = 20) -> str:
    """``<url|KEY> host (cause)`` for the Jira tickets of a rolled-back ring."""
    parts = []
    for ticket in tickets[:limit]:
        link = f"<{ticket.url}|{ticket.key}>" if ticket.url else ticket.key
        cause = f" ({ticket.cause})" if ticket.cause else ""
        parts.append(f"{link} {ticket.host or ''}{cause}".rstrip())
    more = f" and {len(tickets) - limit} more" if len(tickets) > limit else ""
    return "*Jira*: " + ", ".join(parts) + more


def render(event: Notification) -> Message:
    """The message of a notification that is posted or updated as it is (an alert needs the
    on-call group and the thread's link: :func:`alert`)."""
    match event:
        case ParentPosted() | ParentUpdated():
            return parent(event)
        case GateOpened():
            return gate_opened(event)
        case GateClosed():
            return gate_closed(event)
        case RolloutSummary():
            return summary(event)
        case _:
            return plain(event.text)
