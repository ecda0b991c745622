"""A period of outage shared by the Slack and Jira emulators.

``await emulator.go_down(kind)`` starts it, ``await emulator.come_up()`` ends it. While
it lasts every request fails the same way:

``refused``  the emulator stops listening (connection refused; the port is kept);
``503``      HTTP 503 Service Unavailable, the call has no effect;
``429``      HTTP 429 with ``Retry-After: <retry_after>``, the call has no effect;
``hang``     the request is read and then held with no answer until the outage ends,
             when the connection is dropped: only the client's own timeout ends it, and
             the call has no effect.

Unlike the emulators' counted failures (``fail(kind, times=N)``, ``fail_next``), an outage
is a span of time the test opens and closes, e.g. across a PatchGate restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

KINDS = ("refused", "503", "429", "hang")


class Outage:
    """The state of one emulator's outage and the answer it gives while down."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.retry_after = 1
        self.requests_while_down = 0
        self._over = asyncio.Event()

    def begin(self, kind: str, *, retry_after: int = 1) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown outage kind {kind!r} (one of {', '.join(KINDS)})")
        self.kind = kind
        self.retry_after = retry_after
        self._over = asyncio.Event()

    def end(self) -> None:
        self.kind = None
        self._over.set()

    async def answer(
        self,
        request: web.Request,
        *,
        rate_limited: Callable[[str], web.Response],
        unavailable: Callable[[], web.Response],
    ) -> web.StreamResponse | None:
        """The outage's answer to ``request``, or None when the service is up."""
        kind = self.kind
        if kind is None or kind == "refused":
            return None
        self.requests_while_down += 1
        if kind == "429":
            return rate_limited(str(self.retry_after))
        if kind == "503":
            return unavailable()
        await self._over.wait()  # hang: no answer while the outage lasts
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)


class Switchable(Protocol):
    outage: Outage

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def go_down(emulator: Switchable, kind: str, *, retry_after: int = 1) -> None:
    emulator.outage.begin(kind, retry_after=retry_after)
    if kind == "refused":
        await emulator.stop()


async def come_up(emulator: Switchable) -> None:
    kind = emulator.outage.kind
    emulator.outage.end()
    if kind == "refused":
        await emulator.start()
