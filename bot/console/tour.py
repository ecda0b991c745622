"""``patchgate console --tour``: a scripted rollout to watch without clicking.

The tour acts through the same doors as a person on the page (``Relay``: signed slash
commands and clicks) and narrates each step in the page's caption. It plays the example
``weekly`` plan: the requester starts it and tries to approve it herself (refused), an
approver approves the canary, two approve production, a health check fails on a
production host (injected in the recording executor's state file, which ``serve``
re-reads) and the ring is rolled back, with an alert in #oncall.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.console.people import APPROVERS, OPERATOR, PATCHING
from bot.console.relay import Relay
from bot.console.workspace import Json, Workspace
from integrations.testing.executor import RecordingExecutor

log = logging.getLogger("patchgate.console")

APPROVE = "gate_approve"
WAIT = 120.0  # seconds for one step of the rollout


def approve_buttons(ws: Workspace) -> list[tuple[Json, Json]]:
    """(message, Approve button element) in #patching, oldest first."""
    found = []
    for msg in ws.messages.get(PATCHING, []):
        for block in msg["blocks"]:
            for element in block.get("elements") or []:
                if isinstance(element, dict) and element.get("action_id") == APPROVE:
                    found.append((msg, {**element, "block_id": block.get("block_id", "")}))
    return found


async def _until(ws: Workspace, check: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise TimeoutError(f"the tour waited too long for {what}")
        await ws.wait_past(ws.version, 1.0)


async def play(
    ws: Workspace, relay: Relay, state_file: Path, production: list[str], *, pace: float
) -> None:
    """Play the tour once; narrate it in the page's caption."""

    async def say(text: str) -> None:
        ws.caption = text
        await ws.changed()
        log.info("tour: %s", text)
        await asyncio.sleep(pace)

    async def gate(after: str) -> str:
        """The ts of the first message with an Approve button posted after ``after``."""
        await _until(
            ws, lambda: any(float(m["ts"]) > float(after) for m, _ in approve_buttons(ws)), "a gate"
        )
        return next(str(m["ts"]) for m, _ in approve_buttons(ws) if float(m["ts"]) > float(after))

    async def click(user: str, ts: str) -> None:
        for msg, button in approve_buttons(ws):
            if msg["ts"] == ts:
                await relay.click_message(user, PATCHING, ts, button["block_id"], APPROVE)
                return
        raise TimeoutError("the gate's Approve button is gone")

    try:
        await say("olivia.operator (an operator) starts the weekly rollout: /patch run weekly")
        await relay.command(OPERATOR, PATCHING, "run weekly")
        await say("dev and staging are patched batch by batch; the canary waits for approval")
        canary = await gate("0")
        await say("olivia tries to approve her own rollout: refused (separation of duties)")
        await click(OPERATOR, canary)
        await say("alice.approver approves the canary (switch to her to see her replies)")
        await click(APPROVERS[0], canary)
        production_gate = await gate(canary)
        # every production host will now fail its health check after patching
        executor = RecordingExecutor(state_file=state_file)
        for host in production:
            executor.fail(host, "health", "unhealthy")
        await say("production needs two approvers: alice and bob approve")
        await click(APPROVERS[0], production_gate)
        await click(APPROVERS[1], production_gate)
        await say("a health check fails in production: PatchGate rolls the ring back")
        await _until(
            ws,
            lambda: any(
                "roll" in (m.get("text") or "").lower() for m in ws.messages.get("C0ONCALL", [])
            ),
            "the rollback alert",
        )
        await say("the rollback alert is in #oncall; the thread under the rollout has every step")
    except (TimeoutError, IndexError) as exc:
        await say(f"the tour stopped: {exc}")
