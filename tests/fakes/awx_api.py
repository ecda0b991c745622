"""An AWX / Automation Platform controller REST API v2 emulator (aiohttp, ephemeral port).

It answers what the ``awx`` backend calls, in the shapes AWX documents
(awx/api/templates/api/*.md, docs/feature/prompting.md) and its serializers produce:

``GET  ping/`` (no auth), ``GET me/``
``GET  job_templates/?name=`` and ``GET job_templates/{id}/launch/`` (ask_*_on_launch,
       variables_needed_to_start, passwords_needed_to_start, defaults)
``POST job_templates/{id}/launch/`` 201 with ``job``, ``ignored_fields`` and the job; a
       prompt the template does not allow is ignored and listed in ``ignored_fields``;
       ``null`` values and non-mapping extra_vars are 400 with field errors
``GET  jobs/`` filters ``job_template``, ``job_template__in``, ``status``, ``id__gt``,
       ``order_by`` (id/-id); ``extra_vars*`` filters are 403 "Filtering on extra_vars is
       not allowed." (the field is prevent_search); other unknown fields are 400
``GET  jobs/{id}/`` status pending → waiting → running → successful/failed, one
       step per GET (``steps``) unless the job is held; ``failed``, ``job_explanation``,
       ``result_traceback``, ``extra_vars`` (a JSON string), ``limit``
``GET/POST jobs/{id}/cancel/`` ``can_cancel``; 202, or 405 once finished
``GET  jobs/{id}/job_host_summaries/``, ``GET jobs/{id}/job_events/`` (filters ``event``,
       ``event__in``, ``task__icontains``, ``host_name``; ``order_by=counter``)
``GET  inventories/{id}/hosts/``, ``inventories/{id}/groups/``, ``groups/{id}/all_hosts/``

Every list pages as AWX does: ``count``/``next``/``previous``/``results``, ``page_size``
(default 25, capped at 200), ``next`` an absolute path. Auth: ``Authorization: Bearer``;
401 ``{"detail": ...}`` without a valid token; a token in ``read_only_tokens`` gets 403 on
a launch or cancel. 404 ``{"detail": "Not found."}``.

Behaviour per host (``HostScript``): ``ok``, ``changed``, ``failed`` (task, msg, rc),
``unreachable``, ``skipped``; versions before/after come out as the example playbooks
emit them (``set_fact`` tasks named ``patchgate: ...`` in ``runner_on_ok`` events).

Faults: ``fail_next(status, times, path, retry_after)`` (429 with Retry-After, 503, ...),
``lose_launch_answers(n)`` (the job is created, then the connection is dropped before the
answer), ``hold(job_id)``/``release(job_id)``, ``end_job(job_id, status, explanation)``,
``delay_next(seconds, times, path)`` (slow answers, for client timeouts),
``stop()``/``start()`` (connection refused while stopped; state and port are kept).

    awx = AwxEmulator()
    await awx.start()
    inv = awx.add_inventory("linux", hosts={"web1": {}}, groups={"web": ["web1"]})
    jt = awx.add_job_template("Patch", inventory=inv)
    ... AwxClient(awx.url, SecretStr(awx.token)) ...
    assert awx.launches[0]["limit"] == "web1"
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.awx_run import run_playbook

API = "/api/v2/"
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 25
FINAL = ("successful", "failed", "error", "canceled")
PROGRESS = ("new", "pending", "waiting", "running")


@dataclass
class HostScript:
    """What the job template's playbook does on one host."""

    result: str = "changed"  # ok | changed | failed | unreachable | skipped
    task: str = "Install pinned packages"
    msg: str = ""
    rc: int | None = None
    before: dict[str, str | None] | None = None  # None: what the host has (installed)
    reboot_required: bool = False
    report: bool = True  # emit the patchgate set_fact events


@dataclass
class FakeTemplate:
    id: int
    name: str
    inventory: int | None
    ask_limit: bool = True
    ask_variables: bool = True
    ask_inventory: bool = False
    variables_needed: list[str] = field(default_factory=list)
    passwords_needed: list[str] = field(default_factory=list)
    scripts: dict[str, HostScript] = field(default_factory=dict)
    default: HostScript = field(default_factory=HostScript)
    # what GET launch/ says over the real flags (a template edited between the two calls)
    launch_info_override: dict[str, Any] = field(default_factory=dict)
    # assess templates: host -> patchgate_upgradable / patchgate_advisories facts
    assess_facts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class FakeJob:
    id: int
    template: FakeTemplate
    limit: str
    extra_vars: dict[str, Any]
    inventory: int | None
    status: str = "pending"  # AWX answers a launch with a pending job
    steps_left: int = 3
    held: bool = False
    job_explanation: str = ""
    result_traceback: str = ""
    summaries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)


class AwxEmulator:
    def __init__(
        self,
        *,
        token: str = "awx-emulator-token",
        steps: int = 3,
        list_extra_vars: bool = False,
    ) -> None:
        self.token = token
        self.read_only_tokens: set[str] = set()
        self.steps = steps  # GETs of a job before it finishes
        self.list_extra_vars = list_extra_vars  # older AWX: job lists include extra_vars
        self.templates: dict[int, FakeTemplate] = {}
        self.jobs: dict[int, FakeJob] = {}
        self.inventories: dict[int, dict[str, Any]] = {}
        self.installed: dict[str, dict[str, str | None]] = {}  # host -> package -> version
        self.calls: list[tuple[str, str]] = []  # (method, path?query) of every request
        self.call_times: list[float] = []
        self.launches: list[dict[str, Any]] = []  # launch bodies that created a job
        self._failures: list[dict[str, Any]] = []
        self._lose_launches = 0
        self._delays: list[dict[str, Any]] = []
        self._seq = 0
        self._port = 0
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

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

    # --- configuration -----------------------------------------------------------------------

    def _next_id(self) -> int:
        self._seq += 1
        return self._seq

    def add_inventory(
        self,
        name: str,
        *,
        hosts: dict[str, dict[str, Any]],
        groups: dict[str, list[str]] | None = None,
        group_vars: dict[str, dict[str, Any]] | None = None,
        disabled: set[str] | None = None,
    ) -> int:
        inv = self._next_id()
        host_rows = [
            {"id": self._next_id(), "name": h, "variables": json.dumps(v), "enabled": True}
            for h, v in hosts.items()
        ]
        for row in host_rows:
            row["enabled"] = row["name"] not in (disabled or set())
        group_rows = [
            {
                "id": self._next_id(),
                "name": g,
                "variables": json.dumps((group_vars or {}).get(g, {})),
                "hosts": list(members),
            }
            for g, members in (groups or {}).items()
        ]
        self.inventories[inv] = {"id": inv, "name": name, "hosts": host_rows, "groups": group_rows}
        return inv

    def add_job_template(self, name: str, *, inventory: int | None, **kwargs: Any) -> int:
        tid = self._next_id()
        self.templates[tid] = FakeTemplate(id=tid, name=name, inventory=inventory, **kwargs)
        return tid

    def script(self, template: int, host: str, script: HostScript) -> None:
        self.templates[template].scripts[host] = script

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        path: str | None = None,
        method: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (nothing happens)."""
        self._failures.append(
            {"status": status, "times": times, "path": path, "method": method, "ra": retry_after}
        )

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold the next ``times`` matching requests ``seconds`` before answering them."""
        self._delays.append({"seconds": seconds, "times": times, "path": path})

    def lose_launch_answers(self, times: int = 1) -> None:
        """Create the next ``times`` jobs, then drop the connection without answering."""
        self._lose_launches = times

    def hold(self, job_id: int) -> None:
        self.jobs[job_id].held = True

    def release(self, job_id: int) -> None:
        self.jobs[job_id].held = False

    def end_job(self, job_id: int, status: str, *, explanation: str = "") -> None:
        job = self.jobs[job_id]
        job.status, job.job_explanation, job.held = status, explanation, False

    # --- HTTP --------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        self.calls.append((request.method, request.path_qs))
        self.call_times.append(time.monotonic())
        if tail == "ping/":
            return _json({"ha": False, "version": "24.6.1", "active_node": "awx-emulator"})
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token != self.token and token not in self.read_only_tokens:
            return _json(
                {"detail": "Authentication credentials were not provided."},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        for delay in self._delays:
            if delay["times"] > 0 and (not delay["path"] or delay["path"] in tail):
                delay["times"] -= 1
                await asyncio.sleep(delay["seconds"])
                break
        failure = self._failure_for(request.method, tail)
        if failure is not None:
            return failure
        parts = [p for p in tail.split("/") if p]
        writing = request.method == "POST"
        if writing and token in self.read_only_tokens:
            return _json({"detail": "You do not have permission to perform this action."}, 403)
        try:
            return await self._route(request, parts)
        except KeyError:
            return _json({"detail": "Not found."}, 404)

    def _failure_for(self, method: str, tail: str) -> web.Response | None:
        for failure in self._failures:
            if failure["times"] <= 0:
                continue
            if failure["path"] and failure["path"] not in tail:
                continue
            if failure["method"] and failure["method"] != method:
                continue
            failure["times"] -= 1
            headers = {"Retry-After": str(failure["ra"])} if failure["ra"] is not None else {}
            status = failure["status"]
            detail = {429: "Request was throttled.", 503: "Service Unavailable"}.get(
                status, "Injected failure."
            )
            return _json({"detail": detail}, status, headers=headers)
        return None

    async def _route(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        m, q = request.method, request.query
        match parts:
            case ["me"]:
                return _json(_page(request, [{"id": 1, "username": "patchgate"}]))
            case ["job_templates"]:
                rows = [self._template_row(t) for t in self.templates.values()]
                if "name" in q:
                    rows = [r for r in rows if r["name"] == q["name"]]
                return _json(_page(request, rows))
            case ["job_templates", tid, "launch"] if m == "GET":
                return _json(self._launch_info(self.templates[int(tid)]))
            case ["job_templates", tid, "launch"] if m == "POST":
                return await self._launch(request, self.templates[int(tid)])
            case ["jobs"]:
                return self._job_list(request)
            case ["jobs", jid]:
                job = self.jobs[int(jid)]
                self._advance(job)
                return _json(self._job_row(job, detail=True))
            case ["jobs", jid, "cancel"]:
                job = self.jobs[int(jid)]
                can = job.status not in FINAL
                if m == "GET":
                    return _json({"can_cancel": can})
                if not can:
                    return _json({"detail": 'Method "POST" not allowed.'}, 405)
                job.status, job.held = "canceled", False
                job.job_explanation = "Job canceled by user"
                self._finish(job, cancel=True)
                return web.Response(status=202)
            case ["jobs", jid, "job_host_summaries"]:
                return _json(_page(request, list(self.jobs[int(jid)].summaries)))
            case ["jobs", jid, "job_events"]:
                return self._events(request, self.jobs[int(jid)])
            case ["inventories", iid, "hosts"]:
                inv = self.inventories[int(iid)]
                return _json(_page(request, [self._host_row(inv, h) for h in inv["hosts"]]))
            case ["inventories", iid, "groups"]:
                groups = self.inventories[int(iid)]["groups"]
                rows = [{k: v for k, v in g.items() if k != "hosts"} for g in groups]
                return _json(_page(request, rows))
            case ["groups", gid, "all_hosts"]:
                for inv in self.inventories.values():
                    for group in inv["groups"]:
                        if group["id"] == int(gid):
                            hosts = [h for h in inv["hosts"] if h["name"] in group["hosts"]]
                            return _json(_page(request, [self._host_row(inv, h) for h in hosts]))
                raise KeyError(gid)
        raise KeyError(request.path)

    # --- job templates and launches ----------------------------------------------------------

    def _template_row(self, t: FakeTemplate) -> dict[str, Any]:
        return {
            "id": t.id,
            "type": "job_template",
            "url": f"{API}job_templates/{t.id}/",
            "name": t.name,
            "inventory": t.inventory,
            "ask_limit_on_launch": t.ask_limit,
            "ask_variables_on_launch": t.ask_variables,
            "ask_inventory_on_launch": t.ask_inventory,
        }

    def _launch_info(self, t: FakeTemplate) -> dict[str, Any]:
        return {
            "can_start_without_user_input": not (t.variables_needed or t.passwords_needed),
            "passwords_needed_to_start": list(t.passwords_needed),
            "ask_variables_on_launch": t.ask_variables,
            "ask_limit_on_launch": t.ask_limit,
            "ask_inventory_on_launch": t.ask_inventory,
            "survey_enabled": bool(t.variables_needed),
            "variables_needed_to_start": list(t.variables_needed),
            "inventory_needed_to_start": t.inventory is None and not t.ask_inventory,
            "job_template_data": {"id": t.id, "name": t.name, "description": ""},
            "defaults": {
                "limit": "",
                "extra_vars": "",
                "inventory": {"id": t.inventory, "name": f"inventory {t.inventory}"},
            },
            **t.launch_info_override,
        }

    async def _launch(self, request: web.Request, t: FakeTemplate) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _json({"detail": "JSON parse error"}, 400)
        if not isinstance(body, dict):
            return _json({"non_field_errors": ["Invalid data."]}, 400)
        errors: dict[str, list[str]] = {}
        for key, value in body.items():
            if value is None:
                errors[key] = ["This field may not be null."]
        extra = body.get("extra_vars", {})
        if isinstance(extra, str):
            try:
                extra = json.loads(extra) if extra.strip() else {}
            except ValueError:
                extra = None
        if extra is not None and not isinstance(extra, dict):
            errors["extra_vars"] = ["Must be a valid JSON or YAML dictionary."]
        missing = [v for v in t.variables_needed if v not in (extra or {})]
        if missing:
            errors["variables_needed_to_start"] = [f"'{v}' value missing" for v in missing]
        if errors:
            return _json(errors, 400)
        ignored: dict[str, Any] = {}
        limit, extra_vars, inventory = "", dict(extra or {}), t.inventory
        if "limit" in body:
            if t.ask_limit:
                limit = str(body["limit"])
            else:
                ignored["limit"] = body["limit"]
        if "extra_vars" in body and not t.ask_variables:
            ignored["extra_vars"] = body["extra_vars"]
            extra_vars = {}
        if "inventory" in body:
            if t.ask_inventory:
                inventory = int(body["inventory"])
            else:
                ignored["inventory"] = body["inventory"]
        job = FakeJob(
            id=self._next_id(),
            template=t,
            limit=limit,
            extra_vars=extra_vars,
            inventory=inventory,
            steps_left=self.steps,
        )
        self.jobs[job.id] = job
        self.launches.append(body)
        if self._lose_launches > 0:
            self._lose_launches -= 1
            assert request.transport is not None
            request.transport.abort()  # launched, but the answer never arrives
            return web.Response(status=500)
        row = {"job": job.id, "ignored_fields": ignored, **self._job_row(job, detail=True)}
        return _json(row, 201, headers={"Location": f"{API}jobs/{job.id}/"})

    # --- jobs --------------------------------------------------------------------------------

    def _job_row(self, job: FakeJob, *, detail: bool) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": job.id,
            "type": "job",
            "url": f"{API}jobs/{job.id}/",
            "name": job.template.name,
            "job_template": job.template.id,
            "inventory": job.inventory,
            "limit": job.limit,
            "status": job.status,
            "failed": job.status in ("failed", "error"),
            "job_explanation": job.job_explanation,
            "launch_type": "manual",
        }
        if detail or self.list_extra_vars:
            row["extra_vars"] = json.dumps(job.extra_vars)
        if detail:
            row["result_traceback"] = job.result_traceback
        return row

    def _job_list(self, request: web.Request) -> web.Response:
        jobs = list(self.jobs.values())
        for key, value in request.query.items():
            if key in ("page", "page_size", "order_by"):
                continue
            if key.startswith(("extra_vars", "not__extra_vars", "or__extra_vars")):
                return _json({"detail": "Filtering on extra_vars is not allowed."}, 403)
            if key == "job_template":
                jobs = [j for j in jobs if j.template.id == int(value)]
            elif key == "job_template__in":
                wanted = {int(v) for v in value.split(",")}
                jobs = [j for j in jobs if j.template.id in wanted]
            elif key == "status":
                jobs = [j for j in jobs if j.status == value]
            elif key == "id__gt":
                jobs = [j for j in jobs if j.id > int(value)]
            else:
                return _json({"detail": f"Invalid field name: {key}"}, 400)
        jobs.sort(key=lambda j: j.id, reverse=request.query.get("order_by") == "-id")
        return _json(_page(request, [self._job_row(j, detail=False) for j in jobs]))

    def _advance(self, job: FakeJob) -> None:
        if job.status in FINAL or job.held:
            return
        if job.steps_left <= 0:
            self._finish(job)
            return
        job.steps_left -= 1
        job.status = PROGRESS[min(len(PROGRESS) - 1, PROGRESS.index(job.status) + 1)]

    def _events(self, request: web.Request, job: FakeJob) -> web.Response:
        events = list(job.events)
        q = request.query
        if "event" in q:
            events = [e for e in events if e["event"] == q["event"]]
        if "event__in" in q:
            kinds = set(q["event__in"].split(","))
            events = [e for e in events if e["event"] in kinds]
        if "task__icontains" in q:
            needle = q["task__icontains"].lower()
            events = [e for e in events if needle in (e["task"] or "").lower()]
        if "host_name" in q:
            events = [e for e in events if e["host_name"] == q["host_name"]]
        return _json(_page(request, events))

    # --- the playbook run, as AWX would record it --------------------------------------------

    def _finish(self, job: FakeJob, *, cancel: bool = False) -> None:
        summaries, events = run_playbook(self, job, cancel=cancel)
        job.summaries, job.events = summaries, events
        if not cancel:
            bad = any(s["failures"] or s["dark"] for s in summaries)
            job.status = "failed" if bad else "successful"

    def _host_row(self, inv: dict[str, Any], host: dict[str, Any]) -> dict[str, Any]:
        groups = [
            {"id": g["id"], "name": g["name"]} for g in inv["groups"] if host["name"] in g["hosts"]
        ]
        return {
            **{k: host[k] for k in ("id", "name", "variables", "enabled")},
            "type": "host",
            "inventory": inv["id"],
            "summary_fields": {"groups": {"count": len(groups), "results": groups[:5]}},
        }


def _json(data: Any, status: int = 200, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


def _page(request: web.Request, rows: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        size = min(MAX_PAGE_SIZE, max(1, int(request.query.get("page_size", DEFAULT_PAGE_SIZE))))
        page = max(1, int(request.query.get("page", 1)))
    except ValueError:
        size, page = DEFAULT_PAGE_SIZE, 1
    start = (page - 1) * size

    def link(n: int) -> str:
        query = {**request.query, "page": str(n), "page_size": str(size)}
        return f"{request.path}?{urlencode(query)}"

    return {
        "count": len(rows),
        "next": link(page + 1) if start + size < len(rows) else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": rows[start : start + size],
    }
