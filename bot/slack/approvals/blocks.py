"""The rejection modal (its private_metadata is the button's GateRef)."""

from __future__ import annotations

from typing import Any

from bot.slack.approvals.ids import RejectModal
from integrations.slack.messages import GateRef


def reject_modal(ref: GateRef) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": RejectModal.CALLBACK,
        "private_metadata": ref.dump(),
        "title": {"type": "plain_text", "text": "Reject the gate"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"Rollout #{ref.rollout_id}, gate {ref.gate_id}, patch set "
                    f"`{ref.patchset_hash[:12]}`. The rollout stops.",
                },
            },
            {
                "type": "input",
                "block_id": RejectModal.REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason (recorded and posted)"},
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
