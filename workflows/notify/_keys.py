"""Outbox keys of notifications: deterministic, so a repeat emission is a no-op."""

from __future__ import annotations

TOPIC = "notify"


def parent_key(rollout_id: int) -> str:
    return f"rollout:{rollout_id}:parent"


def gate_opened_key(rollout_id: int, gate_id: int) -> str:
    return f"rollout:{rollout_id}:gate:{gate_id}:opened"


def rollback_alert_key(rollout_id: int, ring_position: int) -> str:
    return f"rollout:{rollout_id}:alert:ring:{ring_position}:rollback"
