"""The English sentences the notification builders write themselves.

Most texts come from the room that emits the notification (the engine knows why a
rollout failed); these few are the builders' own, kept here so they are found in one
place.
"""

from __future__ import annotations


def gate_title(ring: str, host_count: int) -> str:
    """The heading of a decided readiness message."""
    return f"Gate for ring {ring} ({host_count} hosts)"


def approval_needed(ring: str, host_count: int, quorum: int) -> str:
    """A readiness message rebuilt from the database (``/patch approve`` without a gate id)."""
    return f"Approval needed before ring {ring} ({host_count} hosts), quorum {quorum}"


def unknown_note(kind: str) -> str:
    return f"unknown notification kind {kind!r}: not a thread note PatchGate knows"
