"""A TCP proxy that can stop answering: a database that hangs, for tests.

``TcpProxy(host, port)`` listens on an ephemeral port of 127.0.0.1 and forwards every
connection to ``host:port``. :meth:`hold` makes it a stuck server (or a black-holed
network that still completes handshakes): connections stay open and new ones are
accepted, their bytes are read (the kernel acknowledges them) but nothing is forwarded
either way, so every statement and every login waits for an answer that does not come.
:meth:`release` lets everything through again in order, as a server that was stuck
resumes or a network heals: bytes sent during the hold (a query, a cancel request, a
close) are delivered then, late.

The proxy runs its own event loop in a thread, so it keeps working whatever the loop
under test is doing; :meth:`hold` and :meth:`release` take effect before they return.

    with TcpProxy("127.0.0.1", cluster.port) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
        proxy.hold()
        ...
        proxy.release()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

CHUNK = 65536


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0  # connections accepted, in all
        self.accepted_while_held = 0  # ... of which while holding
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._open: asyncio.Event | None = None  # set: forwarding; clear: holding
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    # --- control (from the test's thread) ---------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def hold(self) -> None:
        """From now on nothing is forwarded, and nothing answered."""
        self._call(self._set(False))

    def release(self) -> None:
        """Forward again, starting with what was held."""
        self._call(self._set(True))

    @property
    def holding(self) -> bool:
        return self._open is not None and not self._open.is_set()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    # --- the proxy's loop ----------------------------------------------------------------------

    async def _start(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set(self, forwarding: bool) -> None:
        assert self._open is not None
        if forwarding:
            self._open.set()
        else:
            self._open.clear()

    async def _stop(self) -> None:
        assert self._server is not None and self._open is not None
        self._closing = True
        self._server.close()
        while self._tasks:  # connection handlers and their pumps, until none is left
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        me = asyncio.current_task()
        assert me is not None
        self._tasks.add(me)
        try:
            self.accepted += 1
            if not self._open.is_set():
                self.accepted_while_held += 1
            await self._open.wait()  # a login during the hold waits (its bytes unread, acked)
            if self._closing:
                raise ConnectionAbortedError
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            writer.close()
            return
        finally:
            self._tasks.discard(me)
        self._spawn(self._pump(reader, up_writer))
        self._spawn(self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; each chunk read waits for the proxy to be forwarding."""
        assert self._open is not None
        try:
            while data := await reader.read(CHUNK):
                await self._open.wait()
                writer.write(data)
                await writer.drain()
            await self._open.wait()  # the end of the stream is held too
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
