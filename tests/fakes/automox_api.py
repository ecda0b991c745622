"""An Automox console API emulator (aiohttp, ephemeral port), in the shapes Automox's
developer documentation gives (developer.automox.com; docs/automox.md lists the pages).

``GET  /api/servers``                     devices, paged ``page`` (from 0) / ``limit`` (≤ 500)
``GET  /api/servers/{id}``                one device (with ``connected``, ``needs_reboot``,
                                          ``compliant``, ``last_refresh_time``)
``GET  /api/servers/{id}/packages``       its software: installed ones and available updates
                                          (``installed: false``) with severity and CVEs, paged
``GET  /api/servergroups``                groups, paged
``POST /api/servers/{id}/queues``         a device command (``command_type_name``: GetOS,
                                          InstallUpdate with ``args`` the patch names,
                                          InstallAllUpdates, Reboot); 400 for another type
``GET  /api/servers/{id}/queues``         the device's commands

Every call needs ``Authorization: Bearer <key>`` (401 without a valid one) and the ``o``
organization (403 for another org). 404 for an unknown device.

The POST answers 200 with the command object, as documented. Not documented, and
decided here: how a command reports its result (the queue entry keeps ``response`` and
``response_time`` once the agent has run it, and stays listed). A
connected device runs a command after ``steps`` reads of its queue; a disconnected one
never does. Faults: ``fail_next(status, times, retry_after)``, ``lose_queue_answers(n)``
(the command is queued, then the connection drops), ``fail_device(name, message)`` (its
InstallUpdate installs nothing and answers the message).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

API = "/api/"
COMMANDS = ("GetOS", "InstallUpdate", "InstallAllUpdates", "Reboot")


@dataclass
class FakeDevice:
    id: int
    name: str
    os_family: str
    os_name: str
    os_version: str
    group_id: int
    connected: bool = True
    installed: dict[str, str] = field(default_factory=dict)
    available: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> update
    needs_reboot: bool = False
    compliant: bool = True
    fail: str | None = None
    queue: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0


class AutomoxEmulator:
    def __init__(self, *, org: int = 9001, key: str = "amx-key-0001", steps: int = 1) -> None:
        self.org = org
        self.key = key
        self.steps = steps
        self.devices: dict[int, FakeDevice] = {}
        self.groups: dict[int, str | None] = {1: None}  # the org's Default group has no name
        self.posts: list[tuple[int, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._faults: list[tuple[int, float | None]] = []
        self._lose = 0
        self._next_id = 100
        self._port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}/api"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", API + "{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, reuse_address=True)
        await site.start()
        if not self._port:
            server = cast(asyncio.Server, site._server)
            self._port = server.sockets[0].getsockname()[1]
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- set-up ---------------------------------------------------------------------------

    def add_group(self, name: str) -> int:
        gid = max(self.groups) + 1
        self.groups[gid] = name
        return gid

    def add_device(
        self,
        name: str,
        *,
        installed: dict[str, str],
        available: dict[str, str] | None = None,
        severity: dict[str, str] | None = None,
        cves: dict[str, list[str]] | None = None,
        os_family: str = "Linux",
        os_name: str = "Ubuntu",
        os_version: str = "22.04",
        group: int = 1,
        connected: bool = True,
    ) -> FakeDevice:
        self._next_id += 1
        dev = FakeDevice(
            self._next_id, name, os_family, os_name, os_version, group, connected, dict(installed)
        )
        for pkg, version in (available or {}).items():
            dev.available[pkg] = {
                "version": version,
                "severity": (severity or {}).get(pkg),
                "cves": (cves or {}).get(pkg, []),
            }
        self.devices[dev.id] = dev
        return dev

    def by_name(self, name: str) -> FakeDevice:
        return next(d for d in self.devices.values() if d.name == name)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self._faults += [(status, retry_after)] * times

    def lose_queue_answers(self, times: int = 1) -> None:
        self._lose = times

    def fail_device(self, name: str, message: str) -> None:
        self.by_name(name).fail = message

    # --- shapes ---------------------------------------------------------------------------

    def _server(self, dev: FakeDevice) -> dict[str, Any]:
        return {
            "id": dev.id,
            "organization_id": self.org,
            "name": dev.name,
            "display_name": "",
            "os_family": dev.os_family,
            "os_name": dev.os_name,
            "os_version": dev.os_version,
            "server_group_id": dev.group_id,
            "connected": dev.connected,
            "last_disconnect_time": None if dev.connected else "2026-12-01T08:00:00+0000",
            "needs_reboot": dev.needs_reboot,
            "pending": bool(dev.available),
            "compliant": dev.compliant,
            "last_refresh_time": "2026-12-07T12:00:00+0000",
            "ip_addrs": [f"10.0.0.{dev.id % 250}"],
            "tags": [],
        }

    def _packages(self, dev: FakeDevice) -> list[dict[str, Any]]:
        out = []
        for i, (name, version) in enumerate(sorted(dev.installed.items())):
            out.append(self._package(dev, 2 * i, name, version, installed=True))
        for i, (name, upd) in enumerate(sorted(dev.available.items())):
            out.append(
                self._package(
                    dev,
                    2 * i + 1,
                    name,
                    upd["version"],
                    installed=False,
                    severity=upd["severity"],
                    cves=upd["cves"],
                )
            )
        return out

    def _package(
        self, dev: FakeDevice, n: int, name: str, version: str, *, installed: bool, **upd: Any
    ) -> dict[str, Any]:
        return {
            "id": dev.id * 1000 + n,
            "server_id": dev.id,
            "package_id": n,
            "software_id": n,
            "installed": installed,
            "ignored": False,
            "group_ignored": False,
            "name": name,
            "display_name": name,
            "version": version,
            "repo": "Linux" if dev.os_family == "Linux" else dev.os_family,
            "severity": upd.get("severity"),
            "cves": upd.get("cves") or [],
            "cve_score": None,
            "requires_reboot": False,
            "is_managed": True,
            "organization_id": self.org,
        }

    # --- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"errors": ["Unauthorized"]}, status=401)
        if request.query.get("o") != str(self.org):
            return web.json_response({"errors": ["Forbidden for this organization"]}, status=403)
        if self._faults:
            status, retry = self._faults.pop(0)
            headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
            return web.json_response(
                {"errors": ["Too Many Requests"]}, status=status, headers=headers
            )
        parts = [p for p in request.path[len(API) :].split("/") if p]
        if parts == ["servers"]:
            return self._paged(request, [self._server(d) for d in self.devices.values()])
        if parts == ["servergroups"]:
            groups = [
                {"id": g, "name": n, "organization_id": self.org} for g, n in self.groups.items()
            ]
            return self._paged(request, groups)
        if len(parts) >= 2 and parts[0] == "servers":
            dev = self.devices.get(int(parts[1])) if parts[1].isdigit() else None
            if dev is None:
                return web.json_response({"errors": ["Not Found"]}, status=404)
            if len(parts) == 2:
                return web.json_response(self._server(dev))
            if parts[2:] == ["packages"]:
                return self._paged(request, self._packages(dev))
            if parts[2:] == ["queues"] and request.method == "GET":
                dev.reads += 1
                if dev.connected and dev.reads >= self.steps:
                    for cmd in dev.queue:
                        if cmd["response_time"] is None:
                            self._run(dev, cmd)
                return web.json_response(dev.queue)
            if parts[2:] == ["queues"] and request.method == "POST":
                return await self._post_queue(request, dev)
        return web.json_response({"errors": ["Not Found"]}, status=404)

    def _paged(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        try:
            page = int(request.query.get("page", "0"))
            limit = int(request.query.get("limit", "500"))
        except ValueError:
            return web.json_response({"errors": ["page and limit must be integers"]}, status=400)
        if limit < 1 or limit > 500 or page < 0:
            return web.json_response({"errors": ["limit must be 1..500"]}, status=400)
        return web.json_response(items[page * limit : (page + 1) * limit])

    async def _post_queue(self, request: web.Request, dev: FakeDevice) -> web.StreamResponse:
        body = await request.json()
        kind = body.get("command_type_name")
        if kind not in COMMANDS:
            return web.json_response(
                {"errors": [f"invalid command_type_name {kind!r}"]}, status=400
            )
        if kind == "InstallUpdate" and not body.get("args"):
            return web.json_response({"errors": ["args is required for InstallUpdate"]}, status=400)
        self._next_id += 1
        cmd = {
            "id": self._next_id,
            "server_id": dev.id,
            "organization_id": self.org,
            "command_type_name": kind,
            "args": body.get("args") or "",
            "exec_time": dt.datetime.now(dt.UTC).isoformat(),
            "response": None,
            "response_time": None,
        }
        dev.queue.append(cmd)
        dev.reads = 0
        self.posts.append((dev.id, dict(body)))
        if self._lose > 0:
            self._lose -= 1
            assert request.transport is not None
            request.transport.abort()  # queued, but the answer never arrives
        return web.json_response(cmd, status=200)  # documented: 200 with the command

    def _run(self, dev: FakeDevice, cmd: dict[str, Any]) -> None:
        kind = cmd["command_type_name"]
        cmd["response_time"] = dt.datetime.now(dt.UTC).isoformat()
        if kind == "Reboot":
            dev.needs_reboot = False
            cmd["response"] = "Reboot initiated"
            return
        if dev.fail is not None and kind in ("InstallUpdate", "InstallAllUpdates"):
            cmd["response"] = dev.fail
            return
        names = list(dev.available) if kind == "InstallAllUpdates" else cmd["args"].split()
        for name in names:
            upd = dev.available.pop(name, None)
            if upd is not None:
                dev.installed[name] = upd["version"]
        cmd["response"] = f"Installed {len(names)} update(s)" if kind != "GetOS" else "OK"
