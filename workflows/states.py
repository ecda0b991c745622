"""State machines for rollouts, rings, gates and hosts, as pure transition functions.

``transition(state, event) -> new state``; an event that the table does not list for a
state raises :class:`IllegalTransition`. Terminal states accept no event at all.
The hold (operator pause, change freeze) is not a state: it is a separate flag on the
rollout that stops new batches in any non-terminal state.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from workflows.errors import IllegalTransition


class RolloutState(StrEnum):
    SCHEDULED = "scheduled"
    WAITING_WINDOW = "waiting_window"
    ASSESSING = "assessing"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    SUCCEEDED = "succeeded"
    # every ring passed, but some hosts failed, were unhealthy or unreachable within the
    # rings' failure budgets
    SUCCEEDED_WITH_FAILURES = "succeeded_with_failures"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    ABORTED = "aborted"


class RolloutEvent(StrEnum):
    WINDOW_CLOSED = "window_closed"  # outside its window: wait for the next one
    WINDOW_OPENED = "window_opened"
    ASSESS = "assess"
    ASSESSED = "assessed"
    GATE_OPENED = "gate_opened"
    GATE_APPROVED = "gate_approved"
    GATE_REJECTED = "gate_rejected"  # rejected by a person or expired
    COMPLETED = "completed"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ABORT = "abort"


class RingState(StrEnum):
    PENDING = "pending"
    PATCHING = "patching"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    SKIPPED = "skipped"


class RingEvent(StrEnum):
    START = "start"
    VERIFY = "verify"
    VERIFIED = "verified"
    FAIL = "fail"
    ROLLBACK = "rollback"
    ROLLED_BACK = "rolled_back"
    REJECT = "reject"
    SKIP = "skip"


class GateState(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class GateEvent(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    EXPIRE = "expire"


class HostState(StrEnum):
    PENDING = "pending"
    APPLYING = "applying"
    APPLIED = "applied"
    REBOOTING = "rebooting"
    HEALTHY = "healthy"
    FAILED = "failed"
    UNHEALTHY = "unhealthy"
    UNREACHABLE = "unreachable"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    EXCEPTED = "excepted"
    SKIPPED = "skipped"
    # nothing of the pinned set to install (empty share, or every pin already installed):
    # settled without running a package command
    UP_TO_DATE = "up_to_date"


class HostEvent(StrEnum):
    APPLY = "apply"
    APPLIED = "applied"
    APPLY_FAILED = "apply_failed"
    LOST = "lost"  # connection lost / host unreachable
    REBOOT = "reboot"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    ROLLBACK = "rollback"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    EXCEPT = "except"
    SKIP = "skip"
    NOTHING_TO_DO = "nothing_to_do"
    STUCK = "stuck"  # an engine step kept failing on this host: the engine gave up


_R, _RE = RolloutState, RolloutEvent
ROLLOUT_TRANSITIONS: Mapping[RolloutState, Mapping[RolloutEvent, RolloutState]] = {
    _R.SCHEDULED: {
        _RE.ASSESS: _R.ASSESSING,
        _RE.WINDOW_CLOSED: _R.WAITING_WINDOW,
        _RE.ABORT: _R.ABORTED,
        _RE.FAILED: _R.FAILED,
    },
    _R.WAITING_WINDOW: {
        _RE.WINDOW_OPENED: _R.RUNNING,
        _RE.ASSESS: _R.ASSESSING,
        _RE.ABORT: _R.ABORTED,
        _RE.FAILED: _R.FAILED,
    },
    _R.ASSESSING: {
        _RE.ASSESSED: _R.RUNNING,
        _RE.FAILED: _R.FAILED,
        _RE.ABORT: _R.ABORTED,
    },
    _R.RUNNING: {
        _RE.GATE_OPENED: _R.AWAITING_APPROVAL,
        _RE.WINDOW_CLOSED: _R.WAITING_WINDOW,
        _RE.COMPLETED: _R.SUCCEEDED,
        _RE.COMPLETED_WITH_FAILURES: _R.SUCCEEDED_WITH_FAILURES,
        _RE.FAILED: _R.FAILED,
        _RE.ROLLED_BACK: _R.ROLLED_BACK,
        _RE.ABORT: _R.ABORTED,
    },
    _R.AWAITING_APPROVAL: {
        _RE.GATE_APPROVED: _R.RUNNING,
        _RE.GATE_REJECTED: _R.REJECTED,
        _RE.FAILED: _R.FAILED,
        _RE.ABORT: _R.ABORTED,
    },
}

_G, _GE = RingState, RingEvent
RING_TRANSITIONS: Mapping[RingState, Mapping[RingEvent, RingState]] = {
    _G.PENDING: {
        _GE.START: _G.PATCHING,
        _GE.REJECT: _G.REJECTED,
        _GE.SKIP: _G.SKIPPED,
        _GE.FAIL: _G.FAILED,
    },
    _G.PATCHING: {_GE.VERIFY: _G.VERIFYING, _GE.FAIL: _G.FAILED, _GE.SKIP: _G.SKIPPED},
    _G.VERIFYING: {_GE.VERIFIED: _G.DONE, _GE.FAIL: _G.FAILED},
    _G.FAILED: {_GE.ROLLBACK: _G.ROLLING_BACK},
    _G.ROLLING_BACK: {_GE.ROLLED_BACK: _G.ROLLED_BACK},
}

_T, _TE = GateState, GateEvent
GATE_TRANSITIONS: Mapping[GateState, Mapping[GateEvent, GateState]] = {
    _T.OPEN: {_TE.APPROVE: _T.APPROVED, _TE.REJECT: _T.REJECTED, _TE.EXPIRE: _T.EXPIRED},
}

_H, _HE = HostState, HostEvent
HOST_TRANSITIONS: Mapping[HostState, Mapping[HostEvent, HostState]] = {
    _H.PENDING: {
        _HE.APPLY: _H.APPLYING,
        _HE.APPLY_FAILED: _H.FAILED,  # preflight refused: nothing was changed
        _HE.LOST: _H.UNREACHABLE,
        _HE.EXCEPT: _H.EXCEPTED,
        _HE.SKIP: _H.SKIPPED,
        _HE.NOTHING_TO_DO: _H.UP_TO_DATE,
        _HE.STUCK: _H.FAILED,
    },
    _H.APPLYING: {
        _HE.STUCK: _H.FAILED,
        _HE.APPLIED: _H.APPLIED,
        _HE.APPLY_FAILED: _H.FAILED,
        _HE.LOST: _H.UNREACHABLE,
    },
    _H.APPLIED: {
        _HE.STUCK: _H.FAILED,
        _HE.REBOOT: _H.REBOOTING,
        _HE.HEALTHY: _H.HEALTHY,
        _HE.UNHEALTHY: _H.UNHEALTHY,
        _HE.LOST: _H.UNREACHABLE,
    },
    _H.REBOOTING: {
        _HE.STUCK: _H.FAILED,
        _HE.HEALTHY: _H.HEALTHY,
        _HE.UNHEALTHY: _H.UNHEALTHY,
        _HE.LOST: _H.UNREACHABLE,
    },
    # healthy is final for the host's patching, but a ring rollback may still undo it.
    _H.HEALTHY: {_HE.ROLLBACK: _H.ROLLING_BACK},
    _H.FAILED: {_HE.ROLLBACK: _H.ROLLING_BACK},
    _H.UNHEALTHY: {_HE.ROLLBACK: _H.ROLLING_BACK},
    _H.UNREACHABLE: {_HE.ROLLBACK: _H.ROLLING_BACK},
    _H.ROLLING_BACK: {
        _HE.ROLLED_BACK: _H.ROLLED_BACK,
        _HE.ROLLBACK_FAILED: _H.ROLLBACK_FAILED,
        _HE.STUCK: _H.ROLLBACK_FAILED,
    },
}

ROLLOUT_TERMINAL = frozenset(
    {
        _R.SUCCEEDED,
        _R.SUCCEEDED_WITH_FAILURES,
        _R.FAILED,
        _R.ROLLED_BACK,
        _R.REJECTED,
        _R.ABORTED,
    }
)
RING_TERMINAL = frozenset({_G.DONE, _G.ROLLED_BACK, _G.REJECTED, _G.SKIPPED})
# A failed ring is terminal unless it is rolled back.
RING_SETTLED = RING_TERMINAL | {_G.FAILED}
GATE_TERMINAL = frozenset({_T.APPROVED, _T.REJECTED, _T.EXPIRED})
# The same sets as plain strings, for queries (``Rollout.state.in_(ROLLOUT_ACTIVE_VALUES)``)
# and comparisons with stored values. Defined here once; no module re-lists them.
ROLLOUT_ACTIVE = frozenset(s for s in RolloutState if s not in ROLLOUT_TERMINAL)
ROLLOUT_ACTIVE_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in ROLLOUT_ACTIVE))
ROLLOUT_SETTLED_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in ROLLOUT_TERMINAL))
# States in which a host's work in this rollout is over (a ring rollback may still
# move healthy/failed/unhealthy/unreachable hosts to rolling_back).
HOST_SETTLED = frozenset(
    {
        _H.HEALTHY,
        _H.FAILED,
        _H.UNHEALTHY,
        _H.UNREACHABLE,
        _H.ROLLED_BACK,
        _H.ROLLBACK_FAILED,
        _H.EXCEPTED,
        _H.SKIPPED,
        _H.UP_TO_DATE,
    }
)
HOST_TERMINAL = frozenset(
    {_H.ROLLED_BACK, _H.ROLLBACK_FAILED, _H.EXCEPTED, _H.SKIPPED, _H.UP_TO_DATE}
)
# Counted against a ring's failure budget.
HOST_FAILURES = frozenset({_H.FAILED, _H.UNHEALTHY, _H.UNREACHABLE})


S = TypeVar("S", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


def _step(machine: str, table: Mapping[S, Mapping[E, S]], state: S, event: E) -> S:
    try:
        return table[state][event]
    except KeyError:
        raise IllegalTransition(machine, str(state), str(event)) from None


def rollout_transition(state: RolloutState, event: RolloutEvent) -> RolloutState:
    return _step("rollout", ROLLOUT_TRANSITIONS, RolloutState(state), RolloutEvent(event))


def ring_transition(state: RingState, event: RingEvent) -> RingState:
    return _step("ring", RING_TRANSITIONS, RingState(state), RingEvent(event))


def gate_transition(state: GateState, event: GateEvent) -> GateState:
    return _step("gate", GATE_TRANSITIONS, GateState(state), GateEvent(event))


def host_transition(state: HostState, event: HostEvent) -> HostState:
    return _step("host", HOST_TRANSITIONS, HostState(state), HostEvent(event))
