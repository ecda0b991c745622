"""Outbox keys of notifications: deterministic, so a repeat emission is a no-op."""

from __future__ import annotations

TOPIC = "notify"


def parent_key(rollout_id: int) -> str:
    return f"rollout:{rollout_id}:parent"


def gate_opened_key(rollout_id: int, gate_id: int) -> str:
    return f"rollout:{rollout_id}:gate:{gate_id}:opened"


def rollback_alert_key(rollout_id: int, ring_position: int) -> str:
    return f"rollout:{rollout_id}:alert:ring:{ring_position}:rollback"


def left_broken_alert_key(rollout_id: int, ring_position: int, batch: int, backend: str) -> str:
    """On-call: a batch's hosts a tool that cannot roll back left failed (issue 20)."""
    return f"{left_broken_alert_prefix(rollout_id, ring_position)}{batch}:{backend}:broken"


def left_broken_alert_prefix(rollout_id: int, ring_position: int) -> str:
    """What the keys of a ring's :func:`left_broken_alert_key` alerts start with."""
    return f"rollout:{rollout_id}:alert:ring:{ring_position}:batch:"
