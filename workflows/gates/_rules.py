"""Who is acting and what a decision came to: the pieces every gate path shares."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.models import Ring
from workflows.plans import GateSpec, PatchPlan

MIN_HASH_PREFIX = 8


@dataclass(frozen=True)
class Actor:
    """Who is acting, as established by the face (Slack middleware or CLI mapping)."""

    user_id: str
    groups: frozenset[str] = frozenset()
    source: str = "cli"

    def ids(self) -> frozenset[str]:
        return self.groups | {self.user_id}


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    message: str
    gate_state: str | None = None


def has_power(actor: Actor, holders: frozenset[str]) -> bool:
    """True if the actor, or one of the actor's groups, is listed."""
    return bool(actor.ids() & holders)


def gate_spec(plan: PatchPlan, ring: Ring) -> GateSpec:
    return plan.rings[ring.position].gate


def hash_matches(shown: str | None, current: str | None) -> bool:
    if not shown or not current:
        return False
    shown = shown.strip().lower()
    return len(shown) >= MIN_HASH_PREFIX and current.startswith(shown)
