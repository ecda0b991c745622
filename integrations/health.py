"""HealthChecker: runs a plan's health checks (``workflows.plans.HealthCheck``) on a host.

Kinds: ``http`` (aiohttp; expected status, optional body substring, timeout), ``tcp``
(connect), ``command`` (argv on the host over the executor's transport; exit code 0),
``systemd`` (``systemctl is-active`` on the host). Each check is retried ``retries``
times ``interval`` apart, within one overall deadline for the host; the result carries
a short detail and the duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import aiohttp

from workflows.errors import ExecutorError
from workflows.ports import HealthResult, InventoryHost


class CommandOutputLike(Protocol):
    @property
    def exit_code(self) -> int: ...

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...


RunArgv = Callable[[InventoryHost, Sequence[str], float], Awaitable[CommandOutputLike]]


class HealthChecker:
    def __init__(self, *, run_argv: RunArgv | None = None, deadline: float = 600.0) -> None:
        self.run_argv = run_argv
        self.deadline = deadline

    async def check(self, host: InventoryHost, checks: Sequence[Any]) -> Sequence[HealthResult]:
        deadline = time.monotonic() + self.deadline
        return [await self._one(host, check, deadline) for check in checks]

    async def _one(self, host: InventoryHost, check: Any, deadline: float) -> HealthResult:
        started = time.monotonic()
        timeout = check.timeout.total_seconds()
        detail = "not run"
        for attempt in range(check.retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                detail = f"deadline passed ({detail})"
                break
            try:
                ok, detail = await asyncio.wait_for(
                    self._attempt(host, check, min(timeout, remaining)), min(timeout, remaining) + 1
                )
            except TimeoutError:
                ok, detail = False, f"timed out after {timeout:.0f}s"
            if ok:
                break
            if attempt < check.retries:
                await asyncio.sleep(
                    min(check.interval.total_seconds(), max(0, deadline - time.monotonic()))
                )
        else:
            ok = False
        took = time.monotonic() - started
        return HealthResult(name=check.name, ok=ok, detail=f"{detail} ({took:.1f}s)")

    async def _attempt(self, host: InventoryHost, check: Any, limit: float) -> tuple[bool, str]:
        if check.type == "http":
            url = check.url.format(host=host.name, address=host.connect_address)
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit)) as s,
                    s.get(url) as response,
                ):
                    body = await response.text(errors="replace")
            except (aiohttp.ClientError, OSError) as exc:
                return False, f"GET {url}: {type(exc).__name__}: {exc}"[:300]
            if response.status != check.expect_status:
                return False, f"GET {url}: {response.status}, expected {check.expect_status}"
            if check.expect_body and check.expect_body not in body:
                return False, f"GET {url}: body lacks {check.expect_body!r}"
            return True, f"GET {url}: {response.status}"
        if check.type == "tcp":
            try:
                _, writer = await asyncio.open_connection(host.connect_address, check.port)
            except OSError as exc:
                return False, f"tcp {host.connect_address}:{check.port}: {exc}"
            writer.close()
            return True, f"tcp {host.connect_address}:{check.port} open"
        argv = (
            list(check.argv)
            if check.type == "command"
            else ["systemctl", "is-active", "--quiet", check.unit]
        )
        if self.run_argv is None:
            return False, f"{check.type} checks need a transport to the host"
        try:
            out = await self.run_argv(host, argv, limit)
        except ExecutorError as exc:
            return False, str(exc)[:300]
        if out.exit_code != 0:
            tail = (out.stdout + out.stderr).strip().splitlines()[-1:] or [""]
            return False, f"{' '.join(argv)}: exit {out.exit_code} {tail[0][:200]}"
        return True, f"{' '.join(argv)}: exit 0"
