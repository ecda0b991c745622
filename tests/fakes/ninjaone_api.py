"""A NinjaOne public API v2 emulator (aiohttp, ephemeral port), in the shapes of
NinjaOne's published OpenAPI description ("NinjaOne Public API 2.0", served at
``{region}/apidocs``; docs/ninjaone.md lists the operations).

``POST /ws/oauth/token``                 OAuth2 client credentials (form body) -> a token
``GET  /v2/organizations``               organisations, ``pageSize`` / ``after`` (last id)
``GET  /v2/devices-detailed``            devices, ``df`` / ``pageSize`` / ``after``
``GET  /v2/device/{id}``                 one device (with ``os``)
``GET  /v2/device/{id}/os-patches``      its pending/approved/failed/rejected OS patches
``GET  /v2/queries/os-patches``          the same across devices: ``{cursor, results}``
``GET  /v2/queries/os-patch-installs``   install records (INSTALLED/FAILED), ``installedAfter``
``POST /v2/device/{id}/patch/os/apply``  204: a job installs the device's APPROVED patches
``POST /v2/device/{id}/patch/os/scan``   204: a job rescans the device

Every ``/v2`` call needs ``Authorization: Bearer <token>`` of an unexpired token (401
otherwise); POSTs need the ``management`` scope (403). ``df`` understands the documented
forms ``id in (1,2)``, ``org = 1``, ``class in (A,B)``, ``online``/``offline`` (400 for
anything else). Unknown device: 404.

Not documented, decided here: the error body (``{"resultCode", "errorMessage",
"incidentId"}``); how the cursor of a query pages (the next request names the cursor
returned; the last page is the one shorter than ``pageSize``). An apply runs after
``steps`` reads of the install query on an online device; an offline device never runs
it. Faults: ``fail_next(status, times, retry_after, method=)``, ``expire_tokens()``,
``lose_apply_answers(n)`` (the apply is taken, then the connection drops),
``fail_device(name, message)`` (its installs are FAILED), ``install_extra(name, kb)``
(the apply also installs a patch nobody asked for, as a changed policy would).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

WINDOWS = ("WINDOWS_WORKSTATION", "WINDOWS_SERVER")
PATCHABLE = (*WINDOWS, "MAC", "MAC_SERVER")
_DF = re.compile(r"\s*(?:(id|org|class)\s*(?:in\s*\(([^)]*)\)|=\s*(\S+))|(online|offline))\s*")


@dataclass
class FakePatch:
    kb: str | None
    name: str
    severity: str = "IMPORTANT"
    type: str = "SECURITY_UPDATES"
    status: str = "APPROVED"  # MANUAL (awaiting approval), APPROVED, FAILED, REJECTED
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class FakeDevice:
    id: int
    name: str
    org: int
    node_class: str
    offline: bool = False
    patches: list[FakePatch] = field(default_factory=list)
    installs: list[dict[str, Any]] = field(default_factory=list)
    applying: bool = False
    reads: int = 0
    fail: str | None = None
    extra: list[FakePatch] = field(default_factory=list)
    needs_reboot: bool = False
    last_contact: float = field(default_factory=time.time)


class NinjaOneEmulator:
    def __init__(
        self, *, client_id: str = "pg-client", secret: str = "pg-secret-0001", steps: int = 1
    ) -> None:
        self.client_id = client_id
        self.secret = secret
        self.steps = steps
        self.orgs: dict[int, str] = {}
        self.devices: dict[int, FakeDevice] = {}
        self.tokens: dict[str, tuple[float, str]] = {}  # token -> (expiry, scope)
        self.token_requests = 0
        self.posts: list[tuple[str, int]] = []  # (apply|scan, device id)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._faults: list[tuple[int, float | None, str | None]] = []
        self._lose = 0
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/ws/oauth/token", self._token)
        app.router.add_route("*", "/v2/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, reuse_address=True)
        await site.start()
        if not self._port:
            self._port = cast(asyncio.Server, site._server).sockets[0].getsockname()[1]
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- set-up ---------------------------------------------------------------------------

    def add_org(self, name: str) -> int:
        oid = len(self.orgs) + 1
        self.orgs[oid] = name
        return oid

    def add_device(
        self,
        name: str,
        org: int,
        *,
        node_class: str = "WINDOWS_SERVER",
        patches: list[FakePatch] | None = None,
        offline: bool = False,
    ) -> FakeDevice:
        dev = FakeDevice(len(self.devices) + 101, name, org, node_class, offline)
        dev.patches = [FakePatch(p.kb, p.name, p.severity, p.type, p.status) for p in patches or []]
        self.devices[dev.id] = dev
        return dev

    def by_name(self, name: str) -> FakeDevice:
        return next(d for d in self.devices.values() if d.name == name)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """The next ``times`` calls (of ``method`` only, when given) answer ``status``."""
        self._faults += [(status, retry_after, method)] * times

    def lose_apply_answers(self, times: int = 1) -> None:
        self._lose = times

    def expire_tokens(self) -> None:
        self.tokens = {t: (0.0, s) for t, (_, s) in self.tokens.items()}

    def fail_device(self, name: str, message: str) -> None:
        self.by_name(name).fail = message

    def install_extra(self, name: str, kb: str) -> None:
        self.by_name(name).extra.append(FakePatch(kb, f"Unasked update ({kb})"))

    def installed(self, name: str) -> set[str]:
        return {
            "KB" + str(r["kbNumber"]).removeprefix("KB")
            for r in self.by_name(name).installs
            if r["status"] == "INSTALLED"
        }

    # --- shapes ---------------------------------------------------------------------------

    def _device(self, dev: FakeDevice) -> dict[str, Any]:
        windows = dev.node_class in WINDOWS
        return {
            "id": dev.id,
            "uid": str(uuid.UUID(int=dev.id)),
            "organizationId": dev.org,
            "locationId": dev.org * 10,
            "nodeClass": dev.node_class,
            "approvalStatus": "APPROVED",
            "offline": dev.offline,
            "displayName": dev.name.upper(),
            "systemName": dev.name,
            "dnsName": f"{dev.name}.corp.example",
            "created": 1_700_000_000.0,
            "lastContact": dev.last_contact - (86_400 * 3 if dev.offline else 30),
            "lastUpdate": dev.last_contact,
            "os": {
                "manufacturer": "Microsoft Corporation" if windows else "Apple Inc.",
                "name": "Windows Server 2022 Standard" if windows else "macOS Sonoma",
                "architecture": "64-bit",
                "buildNumber": "20348" if windows else "23G93",
                "releaseId": "21H2" if windows else "14.6",
                "needsReboot": dev.needs_reboot,
            },
        }

    def _patch(self, dev: FakeDevice, p: FakePatch, **more: Any) -> dict[str, Any]:
        return {
            "id": p.id,
            "name": p.name,
            "severity": p.severity,
            "status": p.status,
            "type": p.type,
            "kbNumber": p.kb,
            "deviceId": dev.id,
            "timestamp": time.time(),
            **more,
        }

    # --- dispatch -------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        scope = str(form.get("scope") or "monitoring")
        token = uuid.uuid4().hex
        self.tokens[token] = (time.time() + 3600, scope)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": scope}
        )

    def _error(self, status: int, message: str, **headers: str) -> web.Response:
        body = {"resultCode": "FAILURE", "errorMessage": message, "incidentId": uuid.uuid4().hex}
        return web.json_response(body, status=status, headers=headers)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        auth = request.headers.get("Authorization", "")
        held = self.tokens.get(auth.removeprefix("Bearer "))
        if held is None or held[0] < time.time():
            return self._error(401, "Invalid or expired token")
        if self._faults and self._faults[0][2] in (None, request.method):
            status, retry, _ = self._faults.pop(0)
            headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
            return self._error(status, "Too Many Requests" if status == 429 else "Error", **headers)
        parts = [p for p in request.path.split("/") if p][1:]
        if request.method == "POST":
            if "management" not in held[1].split():
                return self._error(403, "Token scope does not allow management")
            answer = self._post(parts)
            if self._lose > 0 and answer.status == 204 and parts[-1] == "apply":
                self._lose -= 1
                assert request.transport is not None
                request.transport.abort()  # applied, but the answer never arrives
            return answer
        try:
            if parts == ["organizations"]:
                items = [{"id": i, "name": n} for i, n in self.orgs.items()]
                return self._after(request, items)
            if parts == ["devices-detailed"]:
                devs = self._filter(request.query.get("df", ""))
                return self._after(request, [self._device(d) for d in devs])
            if parts == ["queries", "os-patches"]:
                return self._query(request, self._pending(request))
            if parts == ["queries", "os-patch-installs"]:
                return self._query(request, self._installs(request))
        except ValueError as exc:
            return self._error(400, str(exc))
        if len(parts) >= 2 and parts[0] == "device":
            dev = self.devices.get(int(parts[1])) if parts[1].isdigit() else None
            if dev is None:
                return self._error(404, f"Device {parts[1]} not found")
            if len(parts) == 2:
                return web.json_response(self._device(dev))
            if parts[2:] == ["os-patches"]:
                wanted = request.query.get("status")
                return web.json_response(
                    [self._patch(dev, p) for p in dev.patches if wanted in (None, p.status)]
                )
        return self._error(404, "Not found")

    def _post(self, parts: list[str]) -> web.Response:
        if len(parts) == 5 and parts[0] == "device" and parts[2:4] == ["patch", "os"]:
            dev = self.devices.get(int(parts[1])) if parts[1].isdigit() else None
            if dev is None:
                return self._error(404, f"Device {parts[1]} not found")
            if parts[4] not in ("apply", "scan"):
                return self._error(404, "Not found")
            if dev.node_class not in PATCHABLE:
                return self._error(400, f"Device is not applicable for os {parts[4]}.")
            self.posts.append((parts[4], dev.id))
            if parts[4] == "apply":
                dev.applying, dev.reads = True, 0
            return web.Response(status=204)
        return self._error(404, "Not found")

    def _filter(self, df: str) -> list[FakeDevice]:
        devs = list(self.devices.values())
        for clause in [c for c in re.split(r"\s+AND\s+", df.strip()) if c]:
            m = _DF.fullmatch(clause)
            if m is None:
                raise ValueError(f"Invalid device filter: {clause!r}")
            what, listed, one, state = m.groups()
            if state:
                devs = [d for d in devs if d.offline == (state == "offline")]
                continue
            values = {v.strip() for v in (listed or one).split(",") if v.strip()}
            if what == "class":
                devs = [d for d in devs if d.node_class in values]
            elif not all(v.isdigit() for v in values):
                raise ValueError(f"Invalid device filter: {clause!r}")
            else:
                ids = {int(v) for v in values}
                devs = [d for d in devs if (d.id if what == "id" else d.org) in ids]
        return devs

    def _pending(self, request: web.Request) -> list[dict[str, Any]]:
        wanted = request.query.get("status")
        return [
            self._patch(d, p)
            for d in self._filter(request.query.get("df", ""))
            for p in d.patches
            if wanted in (None, p.status)
        ]

    def _installs(self, request: web.Request) -> list[dict[str, Any]]:
        after = float(request.query.get("installedAfter") or 0)
        wanted = request.query.get("status")
        out = []
        for dev in self._filter(request.query.get("df", "")):
            dev.reads += 1
            if dev.applying and not dev.offline and dev.reads >= self.steps:
                self._run_apply(dev)
            out += [
                r
                for r in dev.installs
                if r["installedAt"] >= after and wanted in (None, r["status"])
            ]
        return out

    def _run_apply(self, dev: FakeDevice) -> None:
        dev.applying = False
        now = time.time()
        for p in [p for p in dev.patches if p.status == "APPROVED"] + dev.extra:
            p.status = "FAILED" if dev.fail else "INSTALLED"
            record = self._patch(dev, p, installedAt=now)
            if dev.fail:
                record["name"] = f"{p.name}: {dev.fail}"
            dev.installs.append(record)
        dev.patches = [p for p in dev.patches if p.status != "INSTALLED"]
        dev.extra = []
        dev.needs_reboot = not dev.fail

    def _after(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        size, after = _int(request, "pageSize", 1000), _int(request, "after", 0)
        if size < 1 or size > 1000:
            raise ValueError("pageSize must be 1..1000")
        return web.json_response([i for i in items if i["id"] > after][:size])

    def _query(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        size = _int(request, "pageSize", 1000)
        name = request.query.get("cursor")
        if name:
            if name not in self._cursors:
                raise ValueError(f"Unknown or expired cursor {name!r}")
            items = self._cursors.pop(name)
        page, rest = items[:size], items[size:]
        cursor: dict[str, Any] = {"name": None, "offset": 0, "count": len(page), "expires": 0}
        if rest:
            cursor["name"] = uuid.uuid4().hex
            cursor["expires"] = time.time() + 300
            self._cursors[cursor["name"]] = rest
        return web.json_response({"cursor": cursor, "results": page})


def _int(request: web.Request, key: str, default: int) -> int:
    try:
        return int(request.query.get(key, default))
    except ValueError as exc:
        raise ValueError(f"{key} must be an integer") from exc
