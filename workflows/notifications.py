"""The notifications the domain emits, as outbox rows.

Each rollout has one parent message (key ``rollout:ID:parent``); progress goes to its
thread. Keys are deterministic, so an engine that resumes after a crash and emits the
same notification again does not send it twice (the outbox ignores a known key).
The payload is plain data; the Slack adapter renders it, the logging deliverer logs
``text``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from workflows.models import Rollout

TOPIC = "notify"


def parent_key(rollout_id: int) -> str:
    return f"rollout:{rollout_id}:parent"


def _channel(rollout: Rollout) -> str | None:
    slack = rollout.plan_snapshot.get("slack") or {}
    channel = slack.get("channel") if isinstance(slack, dict) else None
    return str(channel) if channel else None


def rollout_parent(rollout: Rollout, text: str, *, now: dt.datetime) -> dict[str, Any]:
    """The rollout's parent message (posted once; updates reference its key)."""
    return {
        "key": parent_key(rollout.id),
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout.id,
        "payload": {
            "kind": "rollout.parent",
            "rollout_id": rollout.id,
            "plan": rollout.plan_name,
            "channel": _channel(rollout),
            "text": text,
        },
    }


def rollout_note(
    rollout: Rollout,
    suffix: str,
    text: str,
    *,
    now: dt.datetime,
    kind: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A reply in the rollout's thread."""
    payload: dict[str, Any] = {
        "kind": kind,
        "rollout_id": rollout.id,
        "plan": rollout.plan_name,
        "channel": _channel(rollout),
        "text": text,
        "thread": True,
    }
    if extra:
        payload.update(extra)
    return {
        "key": f"rollout:{rollout.id}:{suffix}",
        "topic": TOPIC,
        "at": now,
        "rollout_id": rollout.id,
        "parent_key": parent_key(rollout.id),
        "payload": payload,
    }
