from enum import StrEnum

from integrations.slack.messages import GateAction

__all__ = ["GateAction", "RejectModal"]


class RejectModal(StrEnum):
    CALLBACK = "gate_reject_modal"
    REASON_BLOCK = "reject_reason"
    REASON_INPUT = "reject_reason_input"
