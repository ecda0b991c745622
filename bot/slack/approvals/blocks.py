"""The rejection modal (its private_metadata is the button's GateRef)."""

from __future__ import annotations

from typing import Any

from bot.slack import texts
from bot.slack.approvals.ids import RejectModal
from integrations.slack.messages import GateRef


def reject_modal(ref: GateRef) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": RejectModal.CALLBACK,
        "private_metadata": ref.dump(),
        "title": {"type": "plain_text", "text": texts.REJECT_TITLE},
        "submit": {"type": "plain_text", "text": texts.REJECT_SUBMIT},
        "close": {"type": "plain_text", "text": texts.CANCEL},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": texts.reject_intro(ref.rollout_id, ref.gate_id, ref.patchset_hash),
                },
            },
            {
                "type": "input",
                "block_id": RejectModal.REASON_BLOCK,
                "label": {"type": "plain_text", "text": texts.REJECT_REASON_LABEL},
                "element": {
                    "type": "plain_text_input",
                    "action_id": RejectModal.REASON_INPUT,
                    "multiline": True,
                    "min_length": 1,
                    "max_length": 2000,
                },
            },
        ],
    }
