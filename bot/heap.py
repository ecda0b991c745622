"""The garbage collector and serve's event loop."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Move everything serve built at start-up (modules, the Bolt app, SQLAlchemy's
    mappers, the plans) out of the garbage collector's reach; return how many objects.

    CPython's full (generation 2) collection walks every tracked object and holds the
    event loop while it does: with serve's start-up heap that was a pause of about
    110 ms, every few seconds of busy serving, and every Slack ack waiting behind it
    (one such pause in a round of 50 concurrent requests was the ack p99). Frozen
    objects are never collected (they live as long as the process anyway); what serve
    allocates afterwards is collected as before, so the pause shrinks to ~10-15 ms."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# Young collections every YOUNG allocations of containers (CPython's default: 700).
# At 700, a step that reads 500 rows is collected several times while its objects are
# still alive: they are promoted to the old generation, which then fills quickly and is
# walked whole (generation 2), holding the event loop ~150 ms at 10,000 hosts, every
# half second of a rollout. At YOUNG, most of a step's objects are freed by reference
# counting before any collection sees them.
YOUNG = 20_000


def tune_collector() -> tuple[int, int, int]:
    """Set serve's collection thresholds (``YOUNG``, then CPython's own); return them."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
    return gc.get_threshold()
