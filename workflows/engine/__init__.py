"""The rollout engine: drives every non-terminal rollout through the ports.

Durability rule: every side effect on a host is preceded by a persisted intent and
followed by a persisted result, each in its own transaction with its audit events and
outbox rows. After a crash a new engine resumes from the database alone: a host left in
``applying`` is re-read through ``Executor.apply_status`` (the detached command's result
on the host) before anything runs again, so no host is patched twice and none skipped.

One call to :meth:`Engine.tick` applies queued requests, expires gates, then advances
each active rollout by one step (at most one batch), concurrently across rollouts.
Only the leader runs an engine; every write checks the leader epoch it was given.

Also here: the ring layout that the engine and the dry run share. The faces' requests
to the leader (start, pause, resume, abort) are the ``workflows.requests`` room.
"""

from workflows.engine._context import LOCK_NAME, EngineDeps, StepHook
from workflows.engine._layout import (
    NO_SELECTOR,
    RingLayout,
    RolloutLayout,
    layout_rollout,
    render_layout,
    sample_rank,
)
from workflows.engine._loop import Engine

__all__ = [
    "LOCK_NAME",
    "NO_SELECTOR",
    "Engine",
    "EngineDeps",
    "RingLayout",
    "RolloutLayout",
    "StepHook",
    "layout_rollout",
    "render_layout",
    "sample_rank",
]
