"""A Microsoft Graph emulator for the ``intune`` backend (aiohttp, ephemeral port): the
Microsoft identity platform's client-credentials token endpoint, Intune's managed
devices and update-ring device states, and the Windows Update for Business deployment
service (``/beta/admin/windows/updates``), in the shapes Microsoft's Graph reference
gives (docs/intune.md lists the pages).

``POST /{tenant}/oauth2/v2.0/token``            form ``grant_type=client_credentials``,
                                                ``client_id``, ``client_secret``, ``scope``
``GET  /v1.0/deviceManagement/managedDevices``  Intune devices (``$filter`` on
                                                ``operatingSystem``), paged
``GET  /v1.0/deviceManagement/managedDevices/{id}``
``GET  /beta/deviceManagement/deviceConfigurations/{ring}/microsoft.graph.
       windowsUpdateForBusinessConfiguration/deviceUpdateStates``  per-device WU state
``GET  /beta/admin/windows/updates/catalog/entries``  (``isof`` quality filter,
                                                ``$expand`` of productRevisions), paged
``POST /beta/admin/windows/updates/updatableAssets/enrollAssets``  202
``GET  /beta/admin/windows/updates/updatableAssets/{id}``  azureADDevice with errors
``POST /beta/admin/windows/updates/deployments``  201 with its audience
``GET  /beta/admin/windows/updates/deployments[/{id}]``, ``PATCH .../{id}`` (202)
``POST /beta/admin/windows/updates/deploymentAudiences/{id}/updateAudience``  202
``GET  /beta/admin/windows/updates/deploymentAudiences/{id}/members``

Paging: ``$top`` (default ``page_size``) and an absolute ``@odata.nextLink`` carrying a
``$skiptoken``. Errors: Graph's ``{"error": {"code", "message", "innerError"}}``; 401
``InvalidAuthenticationToken`` for a missing or expired token; 429 with ``Retry-After``
on demand. Not documented, decided here: how a deployment progresses (``scheduled`` ->
``offering`` after ``steps`` reads; each member device then installs after ``steps``
more reads: its ``osVersion`` becomes the revision's build and its ring state
``upToDate``) and how a failure shows (the ring state ``failed``, the build unchanged;
counted by a ``rollback`` monitoring rule).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes import intune_graph_shapes as shapes
from tests.fakes.intune_graph_shapes import FakeDeployment, FakeDevice, FakeEntry

WU = "/beta/admin/windows/updates/"
RING = "microsoft.graph.windowsUpdateForBusinessConfiguration/deviceUpdateStates"


class IntuneGraphEmulator:
    def __init__(
        self,
        *,
        tenant: str = "contoso-tenant",
        client_id: str = "pg-client",
        client_secret: str = "pg-secret-0001",
        steps: int = 1,
        page_size: int = 100,
    ) -> None:
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.steps, self.page_size = steps, page_size
        self.ring_id = "c0ffee00-ring-0001"
        self.devices: dict[str, FakeDevice] = {}
        self.entries: dict[str, FakeEntry] = {}
        self.deployments: dict[str, FakeDeployment] = {}
        self.audiences: dict[str, set[str]] = {}
        self.tokens: dict[str, bool] = {}  # token -> valid
        self.requests: list[tuple[str, str]] = []
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self._faults: list[tuple[int, float | None, str]] = []
        self._lose = 0
        self._port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, reuse_address=True)
        await site.start()
        self._port = cast(asyncio.Server, site._server).sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- set-up ---------------------------------------------------------------------------

    def add_device(self, name: str, build: str = "10.0.22631.4460", **kw: Any) -> FakeDevice:
        dev = FakeDevice(name, build, **kw)
        self.devices[dev.id] = dev
        return dev

    def add_entry(self, short_name: str, revisions: dict[str, str], **kw: Any) -> FakeEntry:
        """``revisions``: build (10.0.22631.4541) -> KB (KB5046633)."""
        revs = [
            shapes.revision(build, kb, kw.get("release", "2026-11-11T00:00:00Z"))
            for build, kb in revisions.items()
        ]
        entry = FakeEntry(uuid.uuid4().hex + uuid.uuid4().hex, short_name, revs, **kw)
        self.entries[entry.id] = entry
        return entry

    def by_name(self, name: str) -> FakeDevice:
        return next(d for d in self.devices.values() if d.name == name)

    def fail_next(
        self, status: int, times: int = 1, retry_after: float | None = None, path: str = ""
    ) -> None:
        """The next ``times`` requests (whose path ends with ``path``) answer ``status``."""
        self._faults += [(status, retry_after, path)] * times

    def lose_post_answers(self, times: int = 1) -> None:
        self._lose = times

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, False)

    # --- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((request.method, path))
        if path == f"/{self.tenant}/oauth2/v2.0/token" and request.method == "POST":
            return await self._token(request)
        auth = request.headers.get("Authorization", "")
        if not self.tokens.get(auth.removeprefix("Bearer "), False):
            return shapes.error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        fault = next((f for f in self._faults if path.endswith(f[2])), None)
        if fault is not None:
            self._faults.remove(fault)
            status, retry, _ = fault
            headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
            code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
            return shapes.error(status, code, "Too many requests, retry later.", headers)
        body: dict[str, Any] = {}
        if request.method in ("POST", "PATCH"):
            body = await request.json()
            self.posts.append((path, body))
        if path == "/v1.0/deviceManagement/managedDevices":
            wanted = "operatingSystem eq 'Windows'" in request.query.get("$filter", "")
            devs = [
                d for d in self.devices.values() if not wanted or d.operating_system == "Windows"
            ]
            return self._page(request, [self._managed(d) for d in devs])
        if path.startswith("/v1.0/deviceManagement/managedDevices/"):
            dev = self.devices.get(path.rsplit("/", 1)[1])
            return shapes.not_found() if dev is None else web.json_response(self._managed(dev))
        if path == f"/beta/deviceManagement/deviceConfigurations/{self.ring_id}/{RING}":
            return self._page(request, [shapes.ring_state(d) for d in self.devices.values()])
        if path.startswith(WU):
            return await self._wu(request, path[len(WU) :].split("/"), body)
        return shapes.not_found()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials" or not form.get("scope"):
            return web.json_response(
                {
                    "error": "invalid_request",
                    "error_description": "AADSTS900144: The request body must contain"
                    " grant_type and scope.",
                },
                status=400,
            )
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
                status=401,
            )
        token = f"eyJ0-{uuid.uuid4().hex}"
        self.tokens[token] = True
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            }
        )

    async def _wu(
        self, request: web.Request, parts: list[str], body: dict[str, Any]
    ) -> web.StreamResponse:
        method = request.method
        if parts == ["catalog", "entries"]:
            entries = list(self.entries.values())
            expand = "productRevisions" in request.query.get("$expand", "")
            return self._page(request, [shapes.entry(e, expand) for e in entries])
        if parts == ["updatableAssets", "enrollAssets"] and method == "POST":
            if body.get("updateCategory") not in ("driver", "feature", "quality"):
                return shapes.error(400, "BadRequest", "updateCategory is invalid.")
            for asset in body.get("assets") or []:
                for dev in self.devices.values():
                    if dev.aad_id == asset.get("id"):
                        dev.enrolled = True
            return web.Response(status=202)
        if parts[0] == "updatableAssets" and len(parts) == 2:
            found = next((d for d in self.devices.values() if d.aad_id == parts[1]), None)
            if found is None or not found.enrolled:
                return shapes.not_found()
            return web.json_response(shapes.asset(found))
        if parts == ["deployments"] and method == "POST":
            return self._create(request, body)
        if parts == ["deployments"]:
            return self._page(request, [shapes.deployment(d) for d in self.deployments.values()])
        if parts[0] == "deployments" and len(parts) == 2:
            dep = self.deployments.get(parts[1])
            if dep is None:
                return shapes.not_found()
            if method == "PATCH":
                requested = (body.get("state") or {}).get("requestedValue")
                if requested not in ("none", "paused", "archived"):
                    return shapes.error(
                        400, "BadRequest", f"requestedValue {requested!r} is invalid."
                    )
                dep.requested = requested
                if requested == "paused":
                    dep.effective, dep.reasons = "paused", ["pausedByRequest"]
                elif requested == "none" and dep.effective == "paused":
                    dep.effective, dep.reasons = "offering", ["offeringByRequest"]
                return web.json_response(shapes.deployment(dep), status=202)
            self._advance(dep)
            return web.json_response(shapes.deployment(dep))
        if parts[0] == "deploymentAudiences" and len(parts) == 3:
            members = self.audiences.get(parts[1])
            if members is None:
                return shapes.not_found()
            if parts[2] == "updateAudience" and method == "POST":
                for asset in body.get("addMembers") or []:
                    if asset.get("@odata.type") != "#microsoft.graph.windowsUpdates.azureADDevice":
                        return shapes.error(
                            400, "BadRequest", "addMembers: an azureADDevice is expected."
                        )
                    members.add(str(asset.get("id")))
                for dev in self.devices.values():
                    if dev.aad_id in members:
                        dev.enrolled = True
                return web.Response(status=202)
            if parts[2] == "members":
                return self._page(
                    request,
                    [
                        {"@odata.type": "#microsoft.graph.windowsUpdates.azureADDevice", "id": m}
                        for m in sorted(members)
                    ],
                )
        return shapes.not_found()

    def _create(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        content = body.get("content") or {}
        entry = self.entries.get(str((content.get("catalogEntry") or {}).get("id")))
        if content.get("@odata.type") != "#microsoft.graph.windowsUpdates.catalogContent" or (
            entry is None
        ):
            return shapes.error(
                400,
                "BadRequest",
                "content must be a catalogContent naming a catalog entry of the catalog.",
            )
        settings = body.get("settings") or {}
        if (settings.get("expedite") or {}).get("isExpedited") and not entry.expeditable:
            return shapes.error(400, "BadRequest", "The content cannot be expedited.")
        dep = FakeDeployment(str(uuid.uuid4()), str(uuid.uuid4()), entry, settings, shapes.now())
        self.deployments[dep.id] = dep
        self.audiences[dep.audience_id] = set()
        if self._lose > 0:
            self._lose -= 1
            assert request.transport is not None
            request.transport.abort()  # created, but the answer never arrives
        return web.json_response(shapes.deployment(dep), status=201)

    def _advance(self, dep: FakeDeployment) -> None:
        dep.reads += 1
        if dep.effective == "scheduled" and dep.reads >= self.steps:
            dep.effective, dep.reasons = "offering", ["offeringByRequest"]
        if dep.effective != "offering":
            return
        members = [d for d in self.devices.values() if d.aad_id in self.audiences[dep.audience_id]]
        for dev in members:
            target = shapes.target(dep.entry, dev.build)
            if target is None or dev.ring_status in ("upToDate", "failed") or dev.asset_error:
                continue
            dev.progress += 1
            if dev.progress >= self.steps:
                if dev.fail is not None:
                    dev.ring_status = "failed"
                else:
                    dev.build, dev.ring_status = target, "upToDate"
        failed = sum(1 for d in members if d.ring_status == "failed")
        for rule in (dep.settings.get("monitoring") or {}).get("monitoringRules") or []:
            pct = 100.0 * failed / len(members) if members else 0.0
            if (
                rule.get("signal") == "rollback"
                and rule.get("action") == "pauseDeployment"
                and (failed and pct >= float(rule.get("threshold") or 0))
            ):
                dep.effective, dep.reasons = "paused", ["pausedByMonitoring"]

    # --- shapes ---------------------------------------------------------------------------

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        try:
            top = int(request.query.get("$top", str(self.page_size)))
            skip = int(request.query.get("$skiptoken", "0"))
        except ValueError:
            return shapes.error(400, "BadRequest", "$top and $skiptoken must be integers.")
        out: dict[str, Any] = {"value": items[skip : skip + top]}
        if skip + top < len(items):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(skip + top)
            out["@odata.nextLink"] = f"{self.url}{request.path}?{urlencode(query)}"
        return web.json_response(out)

    def _managed(self, dev: FakeDevice) -> dict[str, Any]:
        return shapes.managed(dev)
