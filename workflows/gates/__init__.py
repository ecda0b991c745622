"""Approval rules and the gates' lifecycle: who may decide a gate, quorum, separation of
duties, expiry, and the one place that opens gates and changes their state.

Slack and the CLI only establish identity and group membership (``Actor``) and call
:func:`decide`; the rules are the same on every path. The engine opens gates and closes
them when their soak ends or their rollout ends, through the functions here.
"""

from workflows.gates._lifecycle import (
    approve_after_soak,
    close_open,
    expire_due,
    gate_of_ring,
    open_gate,
    transition,
)
from workflows.gates._rules import (
    MIN_HASH_PREFIX,
    Actor,
    Outcome,
    gate_spec,
    has_power,
    hash_matches,
)
from workflows.gates._votes import decide, refuse_without_open_gate

__all__ = [
    "MIN_HASH_PREFIX",
    "Actor",
    "Outcome",
    "approve_after_soak",
    "close_open",
    "decide",
    "expire_due",
    "gate_of_ring",
    "gate_spec",
    "has_power",
    "hash_matches",
    "open_gate",
    "refuse_without_open_gate",
    "transition",
]
