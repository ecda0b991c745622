"""A Tanium emulator (aiohttp, ephemeral port) of exactly the calls the ``tanium``
backend makes, in the shapes Tanium's public material gives (docs/tanium.md lists it):

``POST /plugin/products/gateway/graphql``   the API Gateway: the ``endpoints`` query with
    ``first``/``after`` cursor paging (``edges { node }``, ``pageInfo { hasNextPage
    endCursor }``; a cursor unknown or unused for five minutes is an ``errors`` answer),
    ``filter`` ({any, filters: [{path: "name", value}]} and {sensor: {name, column}, op:
    "EQ", value}), ``source: {ts: {...}}`` (a live question: only online endpoints
    answer) and the sensors "Patch - Patch List Applicability" (Title, Tanium UID,
    Classification, Install Status) and "Patch - Deployment Results" (Deployment ID,
    Patch Title, Result); ``collectionInfo { success }``.
``GET  /api/v2/content_sets/by-name/{name}``  {"data": {"id", "name"}}
``GET  /api/v2/groups/by-name/{name}``        {"data": {"id", "name"}} ("All Windows", ...)
``POST /api/v2/groups``                       {"text": question} -> {"data": {"id", ...}}
``POST /plugin/products/patch/v2/deployments`` the playbook's body -> {"id", ...}

Every call needs the ``session`` header carrying the API token (401 without it).

Decided here, not documented publicly: the error bodies' exact text (REST errors as
{"text": ...}; Gateway errors as GraphQL ``errors`` objects with ``message``), the page
size limit (1..1000), and when results appear: an online endpoint targeted by a
deployment reports its rows (``Succeeded``, or ``Failed`` when ``fail_endpoint``) after
``steps`` live reads of the results sensor, and has no row before that; an offline one
never does. Faults: ``fail_next(status, times, retry_after)``, ``graphql_error_next(msg)``,
``fail_deployment_next(status, retry_after)``, ``unfinished_next()``,
``lose_deployment_answers(n)`` (created, then the connection drops).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote

from aiohttp import web

GATEWAY = "/plugin/products/gateway/graphql"
DEPLOYMENTS = "/plugin/products/patch/v2/deployments"
APPLICABILITY = "Patch - Patch List Applicability"
RESULTS = "Patch - Deployment Results"
CURSOR_TTL = 300.0  # "cursors generally persist for five minutes after the most recent use"
_QUESTION = re.compile(r'Computer Name equals "([^"]+)"')


@dataclass
class FakePatch:
    uid: str
    title: str
    classification: str
    installed: bool = False


@dataclass
class FakeEndpoint:
    id: str
    name: str
    platform: str
    os_name: str
    last_seen: dt.datetime
    online: bool = True
    patches: dict[str, FakePatch] = field(default_factory=dict)  # uid -> patch
    fail: str | None = None
    results: list[dict[str, str]] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)  # deployment id -> live reads


class TaniumEmulator:
    def __init__(self, *, token: str = "token-5f0e1d2c3b4a", steps: int = 2) -> None:
        self.token = token
        self.steps = steps
        self.endpoints: dict[str, FakeEndpoint] = {}
        self.groups: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "All Windows"},
            2: {"id": 2, "name": "All Mac"},
            3: {"id": 3, "name": "All Linux"},
        }
        self.content_sets = {"Patch Content Set": 42}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.queries: list[dict[str, Any]] = []  # the variables of every Gateway call
        self.requests: list[tuple[str, str]] = []
        self.clock = time.monotonic
        self._cursors: dict[str, tuple[int, str, float]] = {}
        self._faults: list[tuple[int, float | None]] = []
        self._gql_errors: list[str] = []
        self._lose = 0
        self._deploy_faults: list[tuple[int, float | None]] = []
        self._unfinished = 0
        self._ids = itertools.count(1001)
        self._port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
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

    # --- set-up -------------------------------------------------------------------------

    def add_endpoint(
        self,
        name: str,
        *,
        platform: str = "Windows",
        os_name: str = "Windows Server 2022 Datacenter",
        missing: dict[str, tuple[str, str]] | None = None,  # uid -> (title, class)
        online: bool = True,
        seen_ago: float = 60.0,
    ) -> FakeEndpoint:
        eid = str(next(self._ids))
        seen = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seen_ago)
        ep = FakeEndpoint(eid, name, platform, os_name, seen, online)
        for uid, (title, klass) in (missing or {}).items():
            ep.patches[uid] = FakePatch(uid, title, klass)
        self.endpoints[eid] = ep
        return ep

    def by_name(self, name: str) -> FakeEndpoint:
        return next(e for e in self.endpoints.values() if e.name == name)

    def fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        self._faults.extend([(status, retry_after)] * times)

    def graphql_error_next(self, message: str) -> None:
        self._gql_errors.append(message)

    def fail_deployment_next(self, status: int, retry_after: float | None = None) -> None:
        """The next deployment POST answers ``status`` and creates nothing."""
        self._deploy_faults.append((status, retry_after))

    def unfinished_next(self) -> None:
        """The next live question answers ``collectionInfo.success: false`` (it did not
        complete) with no endpoints."""
        self._unfinished += 1

    def lose_deployment_answers(self, times: int = 1) -> None:
        self._lose += times

    def fail_endpoint(self, name: str, message: str) -> None:
        self.by_name(name).fail = message

    # --- dispatch -----------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.headers.get("session") != self.token:
            return web.json_response({"text": "Unauthorized"}, status=401)
        if self._faults:
            status, retry = self._faults.pop(0)
            headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
            return web.json_response({"text": "Too Many Requests"}, status=status, headers=headers)
        path, method = request.path, request.method
        if path == GATEWAY and method == "POST":
            return await self._graphql(request)
        if path.startswith("/api/v2/content_sets/by-name/") and method == "GET":
            name = unquote(path.rsplit("/", 1)[1])
            if name not in self.content_sets:
                return _not_found()
            return web.json_response({"data": {"id": self.content_sets[name], "name": name}})
        if path.startswith("/api/v2/groups/by-name/") and method == "GET":
            name = unquote(path.rsplit("/", 1)[1])
            group = next((g for g in self.groups.values() if g.get("name") == name), None)
            return _not_found() if group is None else web.json_response({"data": group})
        if path == "/api/v2/groups" and method == "POST":
            body = await request.json()
            if not isinstance(body.get("text"), str) or not body["text"]:
                return web.json_response({"text": "a group needs its question text"}, status=400)
            gid = max(self.groups) + 1
            self.groups[gid] = {"id": gid, "name": "", "text": body["text"]}
            return web.json_response({"data": self.groups[gid]})
        if path == DEPLOYMENTS and method == "POST":
            return await self._deploy(request)
        return _not_found()

    async def _deploy(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if self._deploy_faults:
            status, retry = self._deploy_faults.pop(0)
            headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
            return web.json_response({"text": "refused"}, status=status, headers=headers)
        problems = []
        if body.get("type") != "install" or body.get("osType") not in ("windows", "macos", "linux"):
            problems.append("type must be install and osType windows, macos or linux")
        if body.get("contentSetId") not in self.content_sets.values():
            problems.append("unknown contentSetId")
        uids = body.get("patchTaniumUids")
        if not isinstance(uids, list) or not uids:
            problems.append("patchTaniumUids is required")
        targets = [self.groups.get(g, {}) for g in body.get("targetedQuestionGroupIds") or []]
        names = [m.group(1) for g in targets if (m := _QUESTION.fullmatch(g.get("text", "")))]
        limits = [self.groups.get(g) for g in body.get("targetLimitingGroupIds") or []]
        if not names or None in limits or not limits:
            problems.append("unknown target or limiting group")
        if problems:
            return web.json_response({"text": "; ".join(problems)}, status=400)
        did = str(next(self._ids))
        self.deployments[did] = {"id": int(did), **body}
        scope = {g["name"] for g in limits if g}
        for ep in self.endpoints.values():
            if ep.name in names and f"All {ep.platform}" in scope:
                ep.reads[did] = 0
        if self._lose > 0:
            self._lose -= 1
            assert request.transport is not None
            request.transport.abort()  # created, but the answer never arrives
        return web.json_response({"id": int(did), "name": body.get("name")})

    # --- the Gateway --------------------------------------------------------------------

    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        query, variables = str(body.get("query") or ""), dict(body.get("variables") or {})
        self.queries.append(variables)
        if self._gql_errors:
            return _errors(self._gql_errors.pop(0))
        if "endpoints(" not in query:
            return _errors('Cannot query field on type "Query"')
        first, after = variables.get("first"), variables.get("after")
        if not isinstance(first, int) or not 1 <= first <= 1000:
            return _errors("first must be an integer from 1 to 1000")
        kind = RESULTS if RESULTS in query else APPLICABILITY if APPLICABILITY in query else ""
        live = isinstance(variables.get("source"), dict) and "ts" in variables["source"]
        if live and self._unfinished:
            self._unfinished -= 1
            info = {"hasNextPage": False, "endCursor": None}
            conn = {"edges": [], "pageInfo": info, "collectionInfo": {"success": False}}
            return web.json_response({"data": {"endpoints": conn}})
        matches = [
            e
            for e in self.endpoints.values()
            if (e.online or not live) and _match(e, variables.get("filter"))
        ]
        offset = 0
        if after is not None:
            known = self._cursors.get(str(after))
            if known is None or self.clock() - known[2] > CURSOR_TTL or known[1] != kind:
                return _errors("Invalid or expired cursor")
            offset = known[0]
            self._cursors[str(after)] = (offset, kind, self.clock())
        page = matches[offset : offset + first]
        more = offset + first < len(matches)
        cursor = None
        if page:
            cursor = f"c{len(self._cursors) + 1}x{offset + len(page)}"
            self._cursors[cursor] = (offset + len(page), kind, self.clock())
        edges = [{"node": self._node(e, kind)} for e in page]
        conn = {
            "edges": edges,
            "pageInfo": {"hasNextPage": more, "endCursor": cursor},
            "collectionInfo": {"success": True},
        }
        return web.json_response({"data": {"endpoints": conn}})

    def _node(self, ep: FakeEndpoint, kind: str) -> dict[str, Any]:
        node: dict[str, Any] = {
            "id": ep.id,
            "name": ep.name,
            "eidLastSeen": ep.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "os": {"name": ep.os_name, "platform": ep.platform},
        }
        if kind == APPLICABILITY:
            rows = [
                {
                    "Title": p.title,
                    "Tanium UID": p.uid,
                    "Classification": p.classification,
                    "Install Status": "Installed" if p.installed else "Not Installed",
                }
                for p in ep.patches.values()
            ]
            node["sensorReadings"] = _columns(
                kind, rows, ["Title", "Tanium UID", "Classification", "Install Status"]
            )
        elif kind == RESULTS:
            self._progress(ep)
            node["sensorReadings"] = _columns(
                kind, ep.results, ["Deployment ID", "Patch Title", "Result"]
            )
        return node

    def _progress(self, ep: FakeEndpoint) -> None:
        for did, reads in list(ep.reads.items()):
            if reads < 0:
                continue  # already reported
            ep.reads[did] = reads + 1
            if reads + 1 < self.steps:
                continue
            ep.reads[did] = -1
            for uid in self.deployments[did]["patchTaniumUids"]:
                patch = ep.patches.get(uid)
                if patch is None:
                    continue
                ok = ep.fail is None
                patch.installed = patch.installed or ok
                result = "Succeeded" if ok else "Failed"
                ep.results.append(
                    {"Deployment ID": did, "Patch Title": patch.title, "Result": result}
                )


def _match(ep: FakeEndpoint, flt: Any) -> bool:
    if flt is None:
        return True
    if not isinstance(flt, dict):
        return False
    if "filters" in flt:
        parts = [_match(ep, f) for f in flt["filters"]]
        hit = any(parts) if flt.get("any") else all(parts)
        return hit != bool(flt.get("negated"))
    value = flt.get("value")
    if flt.get("path") == "name":
        return ep.name == value
    sensor = flt.get("sensor")
    if isinstance(sensor, dict) and sensor.get("name") == RESULTS:
        return str(value) in ep.reads
    return False


def _columns(sensor: str, rows: list[dict[str, str]], names: list[str]) -> dict[str, Any]:
    return {
        "columns": [
            {"sensor": {"name": sensor}, "name": n, "values": [r[n] for r in rows]} for n in names
        ]
    }


def _errors(message: str) -> web.Response:
    return web.json_response(
        {"data": None, "errors": [{"message": message, "path": ["endpoints"]}]}
    )


def _not_found() -> web.Response:
    return web.json_response({"text": "Not Found"}, status=404)
