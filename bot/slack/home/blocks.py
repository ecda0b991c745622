"""App Home's view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.slack import texts
from bot.slack.rollouts.blocks import rollout_lines
from integrations.slack.messages import MAX_BLOCKS, section
from workflows.models import OutboxItem, Rollout


def home_view(
    *,
    open_rollouts: Sequence[Rollout],
    waiting: Sequence[str],
    finished: Sequence[Rollout],
    coverage: tuple[int, int, int],
    dead: Sequence[OutboxItem],
    gaps: str = "",
) -> dict[str, Any]:
    patched, total, days = coverage
    percent = f"{100 * patched / total:.0f}%" if total else "n/a"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "PatchGate"}},
        section(texts.HOME_OPEN_ROLLOUTS + (rollout_lines(open_rollouts) or texts.NONE)),
        section(texts.HOME_WAITING + ("\n".join(waiting) or texts.NONE)),
        section(texts.HOME_FINISHED + (rollout_lines(finished) or texts.NONE)),
        section(texts.fleet_coverage(patched, total, days, percent)),
    ]
    if gaps:
        blocks.append(section(gaps))
    if dead:
        lines = [f"• `{d.key}`: {d.last_error or 'dead'}" for d in dead]
        blocks.append(section(texts.HOME_UNDELIVERED + "\n".join(lines)))
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}
