"""Work over a whole fleet with a bounded number of tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def in_turn(
    items: Sequence[T], work: Callable[[T], Awaitable[R]], *, workers: int
) -> list[R]:
    """``work(item)`` for every item, ``workers`` at a time; the results in the items'
    order. Like ``asyncio.gather`` over every item (an error propagates, the other
    workers go on to the end), but with ``workers`` tasks, not one per item: creating
    100,000 tasks at once was one long stretch of the event loop and 150 MB."""
    done: dict[int, R] = {}
    positions = iter(range(len(items)))

    async def worker() -> None:
        for i in positions:
            done[i] = await work(items[i])

    await asyncio.gather(*(worker() for _ in range(max(1, min(workers, len(items))))))
    return [done[i] for i in range(len(items))]
