"""Outbox payloads (``workflows.notify``) rendered as Slack messages.

Block Kit's limits are respected here: at most 50 blocks, at most 3,000 characters per
section text; large content is summarised (the full detail is in the thread). The
Approve / Reject buttons carry a :class:`GateRef` (rollout, gate, patch-set hash) as
JSON, parsed back by the approvals handlers in ``bot/slack/approvals``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

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
    "failed": ":x:",
    "rolled_back": ":rewind:",
    "rejected": ":no_entry:",
    "aborted": ":octagonal_sign:",
}


def parent(payload: Mapping[str, Any]) -> Message:
    """The rollout's parent message: first post, and every in-place update."""
    state = payload.get("state")
    head = f"{STATE_ICONS.get(str(state), '')} *{state}*  ".lstrip() if state else ""
    text = f"{head}{payload['text']}"
    blocks = [section(text)]
    if payload.get("reason"):
        blocks.append(context(str(payload["reason"])))
    return {"text": clip(text, TEXT_LIMIT), "blocks": blocks}


def _results_line(results: Mapping[str, Any]) -> str:
    counts: Mapping[str, int] = results.get("counts") or {}
    ok = counts.get("healthy", 0)
    failed = sum(counts.get(s, 0) for s in ("failed", "unhealthy", "unreachable"))
    rolled = counts.get("rolled_back", 0) + counts.get("rollback_failed", 0)
    parts = [f"{ok} ok", f"{failed} failed", f"{rolled} rolled back"]
    if counts.get("excepted"):
        parts.append(f"{counts['excepted']} excepted")
    line = f"*Ring {results.get('ring')}*: " + ", ".join(parts)
    if results.get("duration_seconds") is not None:
        line += f" in {_duration(float(results['duration_seconds']))}"
    health = results.get("health") or {}
    if health:
        line += f"; health checks {health.get('ok', 0)}/{health.get('total', 0)} passed"
    return line


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{round(seconds / 60)}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def package_lines(
    packages: Sequence[Mapping[str, Any]], *, limit: int = SECTION_LIMIT - 200
) -> str:
    """``name from -> to`` lines, shortened to fit one section."""
    lines = []
    for pkg in packages:
        line = f"`{pkg['name']}` {pkg.get('from') or '(new)'} → {pkg['to']}"
        if pkg.get("advisories"):
            line += f" ({', '.join(pkg['advisories'])})"
        lines.append(line)
    out = ""
    for i, line in enumerate(lines):
        if len(out) + len(line) + 1 > limit:
            return out + f"\n… and {len(lines) - i} more packages"
        out = f"{out}\n{line}" if out else line
    return out or "no package changes"


def gate_summary_blocks(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks = [section(str(payload["text"]))]
    previous = payload.get("previous_ring")
    if previous:
        blocks.append(section(_results_line(previous)))
    packages = payload.get("packages")
    if packages is not None:
        blocks.append(section("*Packages*\n" + package_lines(packages)))
    if payload.get("untested_platforms"):
        blocks.append(
            section(
                ":warning: Not tested in an earlier ring: "
                + ", ".join(payload["untested_platforms"])
            )
        )
    blocks.append(
        context(
            f"Patch set `{str(payload.get('patchset_hash') or '')[:12]}`"
            f" · gate {payload['gate_id']}"
            f" · rollout #{payload['rollout_id']}"
        )
    )
    return blocks


def gate_opened(payload: Mapping[str, Any]) -> Message:
    blocks = gate_summary_blocks(payload)
    if payload.get("gate_kind", "approval") == "approval":
        ref = GateRef(
            rollout_id=int(payload["rollout_id"]),
            gate_id=int(payload["gate_id"]),
            patchset_hash=str(payload.get("patchset_hash") or ""),
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
    return {"text": clip(str(payload["text"]), TEXT_LIMIT), "blocks": blocks}


def _when(value: Any) -> str:
    if not value:
        return ""
    try:
        at = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f" at {at:%Y-%m-%d %H:%M} UTC"


def gate_closed(payload: Mapping[str, Any]) -> Message:
    """The readiness message once decided: the buttons replaced by the decision."""
    state = payload["state"]
    by = payload.get("decided_by")
    who = f"<@{by}>" if by and by != "patchgate" else "PatchGate"
    if state == "approved":
        line = f":white_check_mark: *Approved* by {who}{_when(payload.get('decided_at'))}"
        voters = [v for v in payload.get("approvers") or [] if v != by]
        if voters:
            line += " (with " + ", ".join(f"<@{v}>" for v in voters) + ")"
    elif state == "expired":
        line = f":hourglass: *Expired*{_when(payload.get('decided_at'))}: no decision in time"
    else:
        line = f":no_entry: *Rejected* by {who}{_when(payload.get('decided_at'))}"
        if payload.get("reason"):
            line += f": {payload['reason']}"
    blocks = [*gate_summary_blocks(payload), section(line)]
    return {"text": clip(f"{payload['text']} — {state}", TEXT_LIMIT), "blocks": blocks}


def alert(payload: Mapping[str, Any], *, group: str | None, link: str | None) -> Message:
    mention = f"<!subteam^{group}> " if group else ""
    text = f"{mention}:rotating_light: {payload['text']}"
    tickets = payload.get("tickets") or []
    blocks = text_sections(text, room=MAX_BLOCKS - 2)
    if tickets:
        blocks.append(section(ticket_lines(tickets)))
    if link:
        blocks.append(context(f"<{link}|Rollout #{payload['rollout_id']} thread>"))
    keys = ", ".join(str(t["key"]) for t in tickets[:20])
    fallback = f"{text} (Jira: {keys})" if keys else text
    return {"text": clip(fallback, TEXT_LIMIT), "blocks": blocks}


def summary(payload: Mapping[str, Any]) -> Message:
    facts: Mapping[str, Any] = payload.get("summary") or {}
    text = str(payload["text"])
    if not facts:
        return plain(text)
    counts: Mapping[str, int] = facts.get("counts") or {}
    lines = [
        f"*Patched*: {counts.get('healthy', 0)}  ·  *failed*: "
        f"{sum(counts.get(s, 0) for s in ('failed', 'unhealthy', 'unreachable'))}  ·  "
        f"*rolled back*: {counts.get('rolled_back', 0)}  ·  *excepted*: "
        f"{counts.get('excepted', 0)}  ·  *skipped*: {counts.get('skipped', 0)}"
    ]
    if facts.get("duration_seconds") is not None:
        lines.append(f"*Duration*: {_duration(float(facts['duration_seconds']))}")
    if facts.get("time_to_last_patched_seconds") is not None:
        lines.append(
            "*Start to last host patched*: "
            f"{_duration(float(facts['time_to_last_patched_seconds']))}"
        )
    blocks = [section(text), section("\n".join(lines))]
    if facts.get("packages"):
        blocks.append(section("*Packages*\n" + package_lines(facts["packages"])))
    if facts.get("exceptions"):
        blocks.append(section(exception_lines(facts["exceptions"])))
    return {"text": clip(text, TEXT_LIMIT), "blocks": blocks}


def exception_lines(items: Sequence[Mapping[str, Any]], *, limit: int = SECTION_LIMIT - 100) -> str:
    """Hosts and packages an active exception left out: owner, expiry, ticket, reason."""
    hosts = sum(1 for x in items if not x.get("package"))
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
        what = f"`{item['host']}`" + (
            f" package `{item['package']}`" if item.get("package") else " (whole host)"
        )
        if item.get("exception_id") is None:
            line = f"• {what}: exception not found"
        else:
            owner = f"<@{item['owner']}>" if item.get("owner") else "?"
            until = str(item.get("expires_at") or "?")[:10]
            ticket = item.get("ticket_key") or "ticket pending"
            cve = f" ({item['cve']})" if item.get("cve") else ""
            reason = clip(str(item.get("reason") or ""), 120)
            line = (
                f"• {what}{cve}: exception #{item['exception_id']}, owner {owner}, "
                f"until {until}, {ticket}: {reason}"
            )
        if len(out) + len(line) + 1 > limit:
            return out + f"\n… and {len(items) - i} more (`patchgate exception list`)"
        out = f"{out}\n{line}"
    return out


def ticket_lines(tickets: Sequence[Mapping[str, Any]], *, limit: int = 20) -> str:
    """``<url|KEY> host (cause)`` for the Jira tickets of a rolled-back ring."""
    parts = []
    for ticket in tickets[:limit]:
        key = str(ticket["key"])
        link = f"<{ticket['url']}|{key}>" if ticket.get("url") else key
        cause = f" ({ticket['cause']})" if ticket.get("cause") else ""
        parts.append(f"{link} {ticket.get('host', '')}{cause}".rstrip())
    more = f" and {len(tickets) - limit} more" if len(tickets) > limit else ""
    return "*Jira*: " + ", ".join(parts) + more


def render(payload: Mapping[str, Any]) -> Message:
    """The message for a thread note or the parent (not alerts or updates: see deliverer)."""
    kind = payload.get("kind")
    if kind in ("rollout.parent", "rollout.parent.update"):
        return parent(payload)
    if kind == "gate.opened":
        return gate_opened(payload)
    if kind == "gate.closed":
        return gate_closed(payload)
    if payload.get("summary"):
        return summary(payload)
    return plain(str(payload.get("text", "")))
