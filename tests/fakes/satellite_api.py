"""A Red Hat Satellite / Foreman + Katello REST API v2 emulator (aiohttp, ephemeral port).

It answers what the ``satellite`` backend calls, in the shapes the Foreman, Katello,
foreman_remote_execution and foreman-tasks API documentation gives (apidocs.theforeman.org):

``GET  /api/status``
``GET  /api/v2/hosts`` (``search``: ``name ^ (a,b)``, ``id ^ (1,2)``, ``hostgroup = X``;
       ``organization_id``), each host with ``subscription_facet_attributes``,
       ``content_facet_attributes`` and ``host_collections``
``GET  /api/v2/hosts/:id/errata`` (applicable errata: ``errata_id``, ``type``,
       ``severity``, ``cves[].cve_id``, ``packages`` as NVRA strings)
``GET  /api/v2/hosts/:id/packages`` (installed: ``name``, ``epoch``, ``version``,
       ``release``, ``arch``, ``nvra``; ``search=name ^ (..)``)
``POST /api/job_invocations`` 201 (``job_invocation``: ``feature``, ``inputs``,
       ``search_query``, ``targeting_type``, ``description_format``); unknown feature or
       missing input: 422 ``{"error": {"full_messages": [...]}}``
``GET  /api/job_invocations`` (``search=description ~ "x"``), ``GET
       /api/job_invocations/:id`` (``task``, ``status_label``, ``targeting.hosts[]``
       with ``job_status``, ``template_invocations[].input_values[]``),
       ``GET /api/job_invocations/:id/hosts/:host_id`` (``output`` lines, ``complete``)
``GET  /foreman_tasks/api/tasks/:uuid``: ``state`` planned → running → stopped, one
       step per read (``steps``), ``result`` success/warning/error
``GET  /api/hosts/:id/status/global`` ``{"status": 0|1|2, "status_label": "OK"|
       "Warning"|"Error"}`` (``SatHost.global_status``); another type: 422
``POST /api/job_invocations/:id/cancel`` 200 ``{"cancelled": true, "id": ..}`` (the
       hosts not finished end ``cancelled``); a finished one: 422 ``{"message": "The job
       could not be cancelled."}``

Paging: ``page``/``per_page`` (default 20) and ``total``/``subtotal``/``page``/
``per_page``/``results``. Auth: HTTP Basic; 401 ``{"error": {"message": "Unable to
authenticate user admin"}}``; a user in ``viewers`` gets 403 on a POST. 404
``{"error": {"message": "Resource ... not found by id '..'"}}``.

Per host (``SatHost.script``): ``success`` (installs the ``package`` input), ``failed``
(exit code, message), ``unreachable`` (REX cannot connect), ``cancelled``.
Faults: ``fail_next(status, times, path, retry_after)``, ``lose_invocation_answers(n)``
(created, then the connection drops before the answer), ``hold(job_id)``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

from tests.fakes.foreman_http import basic, error, matches, package, page

FEATURES = {
    "katello_package_install": ("Install Package - Katello Script Default", "package"),
    "katello_errata_install": ("Install Errata - Katello Script Default", "errata"),
    "power_action": ("Power Action - Script Default", "action"),
}
_NEVRA = re.compile(r"(.+?)-(\d+):([^\s]+)$")


@dataclass
class SatHost:
    id: int
    name: str
    os: str = "RedHat 9.4"
    hostgroup: str | None = "RHEL9"
    collections: list[str] = field(default_factory=list)
    subscribed: bool = True
    last_checkin: str = "2026-12-07 12:00:00 UTC"
    packages: dict[str, str] = field(default_factory=dict)  # name -> version[-release]
    errata: list[dict[str, Any]] = field(default_factory=list)
    global_status: int = 0  # GET /api/hosts/:id/status/global: 0 OK, 1 Warning, 2 Error
    script: str = "success"  # success | failed | unreachable | cancelled
    message: str = ""
    exit_code: int = 1


@dataclass
class Invocation:
    id: int
    description: str
    feature: str
    inputs: dict[str, str]
    host_ids: list[int]
    task: str
    reads: int = 0
    held: bool = False
    done: bool = False
    results: dict[int, tuple[str, str]] = field(default_factory=dict)  # status, output


class SatelliteEmulator:
    def __init__(self, *, user: str = "admin", password: str = "sat-secret", steps: int = 2):
        self.user, self.password = user, password
        self.viewers: dict[str, str] = {}
        self.steps = steps
        self.hosts: dict[int, SatHost] = {}
        self.invocations: dict[int, Invocation] = {}
        self.calls: list[tuple[str, str]] = []
        self.posts: list[dict[str, Any]] = []
        self.cancelled: list[int] = []  # job invocations cancelled through the API
        self._failures: list[dict[str, Any]] = []
        self._lose = 0
        self._port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = cast(asyncio.Server, site._server).sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- set-up -----------------------------------------------------------------------------

    def add_host(self, name: str, **kwargs: Any) -> SatHost:
        host = SatHost(id=len(self.hosts) + 1, name=name, **kwargs)
        self.hosts[host.id] = host
        return host

    def host(self, name: str) -> SatHost:
        return next(h for h in self.hosts.values() if h.name == name)

    def fail_next(
        self, status: int, *, times: int = 1, path: str = "", retry_after: str | None = None
    ) -> None:
        self._failures.append({"s": status, "t": times, "p": path, "ra": retry_after})

    def lose_invocation_answers(self, times: int = 1) -> None:
        self._lose = times

    def hold(self, job_id: int) -> None:
        self.invocations[job_id].held = True

    # --- dispatch ---------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.calls.append((request.method, request.path_qs))
        user, password = basic(request.headers.get("Authorization", ""))
        if (user, password) != (self.user, self.password) and self.viewers.get(user) != password:
            return error(401, f"Unable to authenticate user {user}")
        for failure in self._failures:
            if failure["t"] > 0 and failure["p"] in request.path:
                failure["t"] -= 1
                headers = {"Retry-After": failure["ra"]} if failure["ra"] else {}
                return error(failure["s"], "Injected failure", headers)
        if request.method == "POST" and user in self.viewers:
            return error(403, "Access denied: missing permission create_job_invocations")
        parts = [p for p in request.path.split("/") if p]
        try:
            return await self._route(request, parts)
        except KeyError as exc:
            return error(404, f"Resource not found by id {exc}")

    async def _route(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        q = request.query
        match request.method, parts:
            case "GET", ["api", "status"]:
                return web.json_response({"result": "ok", "version": "3.12.0", "api_version": 2})
            case "GET", ["api", "v2", "hosts"]:
                rows = [self._host_row(h) for h in self.hosts.values()]
                try:
                    rows = [r for r in rows if matches(q.get("search", ""), r)]
                except ValueError as exc:
                    return error(400, str(exc))
                return web.json_response(page(q, rows, len(self.hosts)))
            case "GET", ["api", "v2", "hosts", host_id, "errata"]:
                errata = self.hosts[int(host_id)].errata
                return web.json_response(page(q, list(errata), len(errata)))
            case "GET", ["api", "v2", "hosts", host_id, "packages"]:
                host = self.hosts[int(host_id)]
                rows = [package(n, v) for n, v in sorted(host.packages.items())]
                rows = [r for r in rows if matches(q.get("search", ""), r)]
                return web.json_response(page(q, rows, len(host.packages)))
            case "POST", ["api", "job_invocations"]:
                return await self._invoke(request)
            case "GET", ["api", "job_invocations"]:
                rows = [self._invocation_row(i) for i in self.invocations.values()]
                wanted = re.fullmatch(r'description ~ "(.*)"', q.get("search", ""))
                if wanted:
                    rows = [r for r in rows if wanted.group(1) in r["description"]]
                rows.sort(key=lambda r: -int(r["id"]))
                return web.json_response(page(q, rows, len(self.invocations)))
            case "GET", ["api", "job_invocations", job_id]:
                row = self._invocation_row(self.invocations[int(job_id)])
                if q.get("host_status") != "true":  # job_status only when asked (main.rabl)
                    for host in row["targeting"]["hosts"]:
                        del host["job_status"]
                return web.json_response(row)
            case "GET", ["api", "job_invocations", job_id, "hosts", host_id]:
                inv = self.invocations[int(job_id)]
                _status, output = inv.results.get(int(host_id), ("pending", ""))
                lines = [{"output_type": "stdout", "output": output, "timestamp": 1.0}]
                return web.json_response({"complete": inv.done, "output": lines, "refresh": False})
            case "GET", ["api", "hosts", host_id, "status", kind]:
                host = self.hosts[int(host_id)]
                if kind != "global":  # the other types are not emulated
                    return web.json_response(
                        {"error": f"Status {kind} does not exist."}, status=422
                    )
                label = {0: "OK", 1: "Warning", 2: "Error"}[host.global_status]
                return web.json_response({"status_label": label, "status": host.global_status})
            case "POST", ["api", "job_invocations", job_id, "cancel"]:
                inv = self.invocations[int(job_id)]
                if inv.done:
                    return web.json_response(
                        {"message": "The job could not be cancelled."}, status=422
                    )
                self._finish(inv, cancelled=True)
                self.cancelled.append(inv.id)
                return web.json_response({"cancelled": True, "id": inv.id})
            case "GET", ["foreman_tasks", "api", "tasks", task_id]:
                inv = next(i for i in self.invocations.values() if i.task == task_id)
                return web.json_response(self._task(inv))
        return error(404, f"Route {request.method} {request.path} not found")

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        body = (await request.json()).get("job_invocation") or {}
        self.posts.append(body)
        feature = body.get("feature")
        if feature not in FEATURES:
            return error(422, "", full=[f"Feature {feature!r} is not a remote execution feature"])
        needed = FEATURES[feature][1]
        if not (body.get("inputs") or {}).get(needed):
            return error(422, "", full=[f"Template input {needed} is required"])
        ids = re.fullmatch(r"id \^ \(([\d,]+)\)", str(body.get("search_query") or ""))
        if not ids:
            return error(422, "", full=["Search query is not a static list of host ids"])
        inv = Invocation(
            id=len(self.invocations) + 1,
            description=str(body.get("description_format") or FEATURES[feature][0]),
            feature=str(feature),
            inputs=dict(body["inputs"]),
            host_ids=[int(i) for i in ids.group(1).split(",") if int(i) in self.hosts],
            task=str(uuid.uuid4()),
        )
        self.invocations[inv.id] = inv
        if self._lose > 0:
            self._lose -= 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        return web.json_response(self._invocation_row(inv), status=201)

    # --- state ------------------------------------------------------------------------------

    def _task(self, inv: Invocation) -> dict[str, Any]:
        if not inv.held and not inv.done:
            inv.reads += 1
            if inv.reads >= self.steps:
                self._finish(inv)
        state = "stopped" if inv.done else ("running" if inv.reads else "planned")
        bad = any(s != "success" for s, _ in inv.results.values())
        result = ("warning" if bad else "success") if inv.done else "pending"
        return {
            "id": inv.task,
            "label": "Actions::RemoteExecution::RunHostsJob",
            "state": state,
            "result": result,
            "progress": 1.0 if inv.done else 0.5,
        }

    def _finish(self, inv: Invocation, *, cancelled: bool = False) -> None:
        inv.done = True
        for host_id in inv.host_ids:
            host = self.hosts[host_id]
            if cancelled:  # a cancel stops the hosts' tasks before they ran
                inv.results[host_id] = ("cancelled", "Job cancelled by user\n")
            elif host.script == "unreachable":
                out = (
                    "Error initializing command: Net::SSH::ConnectionTimeout"
                    " - Failed to establish connection\n"
                )
                inv.results[host_id] = ("error", out)
            elif host.script == "cancelled":
                inv.results[host_id] = ("cancelled", "Job cancelled by user\n")
            elif host.script == "failed":
                message = host.message or "Error: transaction failed"
                out = f"{message}\nExit status: {host.exit_code}\n"
                inv.results[host_id] = ("error", out)
            else:
                if inv.feature == "katello_package_install":
                    for item in inv.inputs["package"].split():
                        m = _NEVRA.match(item)
                        assert m, item
                        host.packages[m.group(1)] = m.group(3)
                inv.results[host_id] = ("success", "Complete!\nExit status: 0\n")

    def _invocation_row(self, inv: Invocation) -> dict[str, Any]:
        statuses = [s for s, _ in inv.results.values()]
        label = (
            "running"
            if not inv.done
            else ("succeeded" if all(s == "success" for s in statuses) else "failed")
        )
        name, input_name = FEATURES[inv.feature]
        return {
            "id": inv.id,
            "description": inv.description,
            "job_category": "Katello",
            "status_label": label,
            "succeeded": statuses.count("success"),
            "failed": len(statuses) - statuses.count("success"),
            "total": len(inv.host_ids),
            "task": {"id": inv.task, "state": "stopped" if inv.done else "running"},
            "dynflow_task": {"id": inv.task, "state": "stopped" if inv.done else "running"},
            "targeting": {
                "targeting_type": "static_query",
                "hosts": [
                    {
                        "id": h,
                        "name": self.hosts[h].name,
                        "job_status": inv.results.get(h, ("running", ""))[0],
                    }
                    for h in inv.host_ids
                ],
            },
            "template_invocations": [
                {
                    "template_name": name,
                    "input_values": [
                        {"template_input_name": input_name, "value": inv.inputs[input_name]}
                    ],
                }
            ],
        }

    def _host_row(self, host: SatHost) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": host.id,
            "name": host.name,
            "operatingsystem_name": host.os,
            "architecture_name": "x86_64",
            "hostgroup_title": host.hostgroup,
            "host_collections": [{"id": i + 1, "name": c} for i, c in enumerate(host.collections)],
            "content_facet_attributes": {
                "lifecycle_environment_name": "Production",
                "content_view_name": "RHEL9-CV",
                "errata_counts": {"total": len(host.errata)},
            },
        }
        if host.subscribed:
            row["subscription_facet_attributes"] = {
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, host.name)),
                "last_checkin": host.last_checkin,
            }
        return row
