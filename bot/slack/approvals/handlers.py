"""Approve / Reject clicks and the rejection modal.

Approve (HTTP mode): Bolt's middleware ``bot.slack.guard`` journals the signed click
(``bot.slack.journal``) and answers it once its row is durable; the journal decides it
right after the ack with :func:`process_approve`, the decision's transaction marking the
journal row processed; the outcome (a refusal, which the domain has audited, or the
accepted vote) is told ephemerally. Without a journal row (Socket Mode) the listener
here decides and commits the vote before the ack. Reject: ``views.open`` is called right
after the ack (the trigger is valid for 3 seconds), the vote happens on submission,
which requires a reason.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from pydantic import ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import texts
from bot.slack.approvals.blocks import reject_modal
from bot.slack.approvals.decisions import decide_from_slack
from bot.slack.approvals.ids import GateAction, RejectModal
from bot.slack.deps import MAX_ROW_ID, SlackDeps
from bot.slack.forms import field, form_values, refuse_metadata
from bot.slack.journal import APPROVE, Journal, claim
from bot.slack.later import defer
from bot.slack.security import REFUSED, RefusalAudit
from integrations.slack.messages import GateRef
from workflows import audit
from workflows.db import unit_of_work
from workflows.models import Decision

log = logging.getLogger("patchgate.slack")


def _ref(raw: str | None) -> GateRef | None:
    """The button's GateRef, or None: not one, or naming ids no row can have (a query
    with them fails: an Approve click journaled with one was retried forever)."""
    try:
        ref = GateRef.model_validate_json(raw or "")
    except ValidationError:
        return None
    if not all(0 < n <= MAX_ROW_ID for n in (ref.rollout_id, ref.gate_id)):
        return None
    return ref


async def _tell(client: AsyncWebClient, body: dict[str, Any], text: str) -> None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    user = (body.get("user") or {}).get("id")
    if channel and user:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # Feedback only: what it says is already recorded (and audited).
            log.warning("could not tell %s %r (%s)", user, text, type(exc).__name__)


async def _refused_value(
    deps: SlackDeps, body: dict[str, Any], value: Any, journal: str | None = None
) -> bool:
    """A button value that is not a GateRef (tampered with, or from another version).
    False if the journaled request was processed already."""
    user = (body.get("user") or {}).get("id")
    detail = f"button value {str(value)[:120]!r} is not a gate reference"
    if journal is None:
        await RefusalAudit(deps.db, deps.clock).signed("bad_button_value", detail, user=user)
        return True
    log.warning("refused a signed Slack request from %s: bad_button_value (%s)", user, detail)
    async with deps.one_writer(), unit_of_work(deps.db) as session:
        if not await claim(session, journal, deps.clock.now()):
            return False
        await audit.append(
            session,
            kind=REFUSED,
            data={"reason": "bad_button_value", "detail": detail, "count": 1, "source": "slack"},
            at=deps.clock.now(),
            actor=user,
        )
    return True


async def process_approve(deps: SlackDeps, journal: str | None, body: dict[str, Any]) -> None:
    """Decide an Approve click and tell the clicker (once per journaled request)."""
    action = body["actions"][0]
    ref = _ref(action.get("value"))
    if ref is None:
        if await _refused_value(deps, body, action.get("value"), journal):
            await _tell(deps.client, body, texts.UNKNOWN_BUTTON)
        return
    outcome = await decide_from_slack(
        deps,
        rollout_id=ref.rollout_id,
        gate_id=ref.gate_id,
        user_id=body["user"]["id"],
        decision=Decision.APPROVE,
        shown_hash=ref.patchset_hash,
        reason=None,
        journal=journal,
    )
    if outcome is None:  # processed already (by a sweep, or another replica)
        return
    await _tell(deps.client, body, texts.decided(outcome.accepted, outcome.message))


def register(app: AsyncApp, deps: SlackDeps, journal: Journal | None = None) -> None:
    if journal is not None:
        journal.register(APPROVE, process_approve)

    async def approve(ack: AsyncAck, body: dict[str, Any]) -> None:
        # HTTP mode: an Approve click is journaled and answered by the guard middleware
        # (bot.slack.guard, bot.slack.journal) and never reaches this listener.
        action = body["actions"][0]
        if _ref(action.get("value")) is None:
            await ack()
            defer(deps, body, lambda: deps.after_ack(lambda: process_approve(deps, None, body)))
            return
        # not journaled (Socket Mode): decide and commit before the ack
        await process_approve(deps, None, body)
        await ack()

    async def reject(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        ref = _ref(body["actions"][0].get("value"))
        await ack()
        defer(deps, body, lambda: open_or_refuse(body, client, ref))

    async def open_or_refuse(
        body: dict[str, Any], client: AsyncWebClient, ref: GateRef | None
    ) -> None:
        if ref is None:
            await _refused_value(deps, body, body["actions"][0].get("value"))
            await _tell(client, body, texts.UNKNOWN_BUTTON)
            return
        await client.views_open(trigger_id=body["trigger_id"], view=reject_modal(ref))

    async def reject_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        raw = view.get("private_metadata")
        ref = _ref(raw if isinstance(raw, str) else None)
        values = form_values(view)
        reason = field(values, RejectModal.REASON_BLOCK, RejectModal.REASON_INPUT, "value")
        if ref is None:
            await refuse_metadata(deps, body, raw, "rejection")
            await ack(response_action="errors", errors={RejectModal.REASON_BLOCK: texts.STALE_FORM})
            return
        if not reason:
            await ack(
                response_action="errors",
                errors={RejectModal.REASON_BLOCK: texts.REJECTION_NEEDS_REASON},
            )
            return
        outcome = await decide_from_slack(
            deps,
            rollout_id=ref.rollout_id,
            gate_id=ref.gate_id,
            user_id=body["user"]["id"],
            decision=Decision.REJECT,
            shown_hash=ref.patchset_hash,
            reason=reason,
        )
        assert outcome is not None  # not journaled: None only for a processed journal row
        if outcome.accepted:
            await ack()
        else:
            await ack(response_action="errors", errors={RejectModal.REASON_BLOCK: outcome.message})

    app.action(GateAction.APPROVE.value)(approve)
    app.action(GateAction.REJECT.value)(reject)
    app.view(RejectModal.CALLBACK.value)(reject_submitted)
