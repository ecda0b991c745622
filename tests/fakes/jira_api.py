"""A Jira REST emulator (aiohttp, ephemeral port) for tests with the real ``jira`` client.

It implements what the client calls on PatchGate's path, in Jira's response shapes:
serverInfo, myself, field, issue create/get, search (classic ``search`` with startAt/total
and Cloud's ``search/jql`` with ``nextPageToken``/``isLast``), comments, transitions list
and do-transition (204). It answers as Server/Data Center or as Cloud
(``deployment=``), which is what makes the client pick its search API.

Error shapes: 400 with ``errorMessages`` and ``errors``, 401 as JSON or plain text, 404,
429 with ``Retry-After``. Modes: ``fail_next`` (N answers with a status), ``lose_create_
responses`` (the issue is created, then the connection is dropped before the answer),
``stop``/``start`` (connection refused while stopped; the port is kept), and Cloud's
eventually consistent search (``search_lag`` seconds before a new issue is found).
A period of outage (refused, 503, 429, hang; tests/fakes/outage.py) is opened with
``go_down(kind)`` and closed with ``come_up()``.

People and webhooks (issue 23): ``add_person`` makes a Jira user (Cloud: account id,
e-mail optional as Cloud's privacy settings allow; Server: user name and key);
``comment_as`` and ``transition_as`` act as that person (a transition is chosen by name
from ``transitions``, each with an id, a name and the status it reaches, and leaves a
changelog history) and fire the registered webhooks (``add_webhook``) in the
deployment's shape: ``comment_created`` and ``jira:issue_updated`` with its ``changelog``
(and, with ``transition_in_webhook``, the ``transition`` a workflow post-function adds);
Cloud adds ``X-Atlassian-Webhook-Identifier`` and, for a webhook with a secret,
``X-Hub-Signature: sha256=<HMAC>``. ``deliveries`` records each (headers, body, status),
and ``redeliver`` sends one again. Issues carry their ``comment`` field, and search
answers ``expand=changelog``. ``custom_fields`` are listed by ``/field`` like Jira's.

    jira = JiraEmulator(deployment="Cloud", user="bot@example.com")
    await jira.start()
    ... JIRA(server=jira.url, basic_auth=(jira.user, jira.token)) ...
    assert [i.key for i in jira.issues.values()] == ["OPS-1"]
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from aiohttp import web

from tests.fakes import outage as outages

DEFAULT_TRANSITIONS: list[dict[str, Any]] = [
    {"id": "11", "name": "Start Progress", "to": "In Progress", "category": "indeterminate"},
    {"id": "31", "name": "Done", "to": "Done", "category": "done"},
]
_CATEGORY_NAMES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}
_CLAUSE = re.compile(
    r'^\s*(labels|statusCategory|project|status|issuetype)\s*(=|!=)\s*"?([^"]+?)"?\s*$',
    re.IGNORECASE,
)


@dataclass
class FakeIssue:
    id: str
    key: str
    fields: dict[str, Any]
    status: str = "To Do"
    category: str = "new"
    comments: list[dict[str, Any]] = field(default_factory=list)
    histories: list[dict[str, Any]] = field(default_factory=list)  # the changelog
    visible_at: float = 0.0  # monotonic time from which search finds it (Cloud lag)

    @property
    def labels(self) -> list[str]:
        return list(self.fields.get("labels") or [])


@dataclass
class JiraPerson:
    name: str  # Server user name (and key); also how tests name the person
    account_id: str
    email: str | None
    display: str

    def json(self, deployment: str) -> dict[str, Any]:
        body: dict[str, Any] = {"displayName": self.display, "active": True}
        if deployment == "Cloud":
            body["accountId"] = self.account_id
        else:
            body.update(name=self.name, key=self.name)
        if self.email is not None:
            body["emailAddress"] = self.email
        return body


@dataclass
class Webhook:
    url: str
    secret: str | None = None  # Cloud: X-Hub-Signature over the body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class WebhookDelivery:
    url: str
    headers: dict[str, str]
    body: bytes
    status: int = 0  # 0: PatchGate could not be reached
    answer: Any = None


@dataclass
class _Failure:
    status: int
    remaining: int
    path: str | None
    retry_after: str | None
    plain: bool


class JiraEmulator:
    def __init__(
        self,
        *,
        deployment: str = "Server",
        user: str | None = None,
        token: str = "pat-secret-123",
        projects: tuple[str, ...] = ("OPS",),
        issue_types: tuple[str, ...] = ("Task", "Bug"),
        priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low"),
        page_size: int = 2,
        search_lag: float = 0.0,
        custom_fields: tuple[tuple[str, str, str], ...] = (),  # (id, name, schema type)
    ) -> None:
        assert deployment in ("Server", "Cloud")
        self.deployment = deployment
        self.user = (
            user if user is not None else ("bot@example.com" if deployment == "Cloud" else None)
        )
        self.token = token
        self.projects = projects
        self.issue_types = issue_types
        self.priorities = priorities
        self.page_size = page_size
        self.search_lag = search_lag
        self.transitions: list[dict[str, Any]] = [dict(t) for t in DEFAULT_TRANSITIONS]
        self.issues: dict[str, FakeIssue] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request answered
        self.auth_plain_text = False  # 401 as plain text instead of JSON
        self._failures: list[_Failure] = []
        self._lose_creates = 0
        self._seq = 0
        self._port = 0
        self._runner: web.AppRunner | None = None
        self.outage = outages.Outage()
        self.custom_fields = custom_fields
        self.people: dict[str, JiraPerson] = {}
        self.webhooks: list[Webhook] = []
        self.deliveries: list[WebhookDelivery] = []
        self.transition_in_webhook = False
        self._history_seq = 0
        self._comment_seq = 0

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Serve (again): the first start picks an ephemeral port, later ones reuse it."""
        app = web.Application()
        app.router.add_route("*", "/rest/api/{version}/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, reuse_address=True)
        await site.start()
        if not self._port:
            server = site._server
            assert server is not None
            self._port = cast(asyncio.Server, server).sockets[0].getsockname()[1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving: connections are refused until start() is called again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def go_down(self, kind: str, *, retry_after: int = 1) -> None:
        await outages.go_down(self, kind, retry_after=retry_after)

    async def come_up(self) -> None:
        await outages.come_up(self)

    # --- modes --------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        path: str | None = None,
        retry_after: float | None = None,
        plain: bool = False,
    ) -> None:
        """Answer the next ``times`` requests (whose path contains ``path``) with ``status``."""
        self._failures.append(
            _Failure(
                status,
                times,
                path,
                None if retry_after is None else str(int(retry_after)),
                plain,
            )
        )

    def lose_create_responses(self, times: int = 1) -> None:
        """Create the next ``times`` issues, then drop the connection without answering."""
        self._lose_creates = times

    def open_issues(self) -> list[FakeIssue]:
        return [i for i in self.issues.values() if i.category != "done"]

    def add_issue(self, *, project: str, summary: str, labels: list[str]) -> FakeIssue:
        """An issue made outside PatchGate (e.g. by a person)."""
        return self._create(
            {"project": {"key": project}, "summary": summary, "labels": labels}, visible=True
        )

    # --- dispatch -------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"].rstrip("/")
        self.calls.append((request.method, tail))
        down = await self.outage.answer(
            request,
            rate_limited=lambda after: self._failure(_Failure(429, 0, None, after, False)),
            unavailable=lambda: self._failure(_Failure(503, 0, None, None, False)),
        )
        if down is not None:
            return down
        for failure in self._failures:
            if failure.remaining > 0 and (failure.path is None or failure.path in tail):
                failure.remaining -= 1
                return self._failure(failure)
        self._failures = [f for f in self._failures if f.remaining > 0]
        if not self._authorised(request):
            if self.auth_plain_text:
                return web.Response(
                    status=401, text="Basic authentication failed", content_type="text/plain"
                )
            return self._error(401, ["You are not authenticated. Authentication required."])
        m = request.method
        if tail == "serverInfo" and m == "GET":
            return self._server_info()
        if tail == "myself" and m == "GET":
            return self._myself()
        if tail == "field" and m == "GET":
            return web.json_response(_FIELDS + self._custom_fields_json())
        if tail == "issue" and m == "POST":
            return await self._create_issue(request)
        if tail == "search" and m in ("GET", "POST"):
            return await self._search_classic(request)
        if tail == "search/jql" and m in ("GET", "POST"):
            if self.deployment != "Cloud":
                return self._error(404, ["null for uri: search/jql"])
            return await self._search_jql(request)
        parts = tail.split("/")
        if parts[0] == "issue" and len(parts) >= 2:
            issue = self.issues.get(parts[1])
            if issue is None:
                return self._error(
                    404, ["Issue does not exist or you do not have permission to see it."]
                )
            rest = parts[2:]
            if not rest and m == "GET":
                return web.json_response(self._issue_json(issue))
            if rest == ["comment"] and m == "GET":
                return web.json_response(
                    {
                        "startAt": 0,
                        "maxResults": len(issue.comments),
                        "total": len(issue.comments),
                        "comments": issue.comments,
                    }
                )
            if rest == ["comment"] and m == "POST":
                return await self._add_comment(request, issue)
            if rest == ["transitions"] and m == "GET":
                return web.json_response({"expand": "transitions", "transitions": self._tjson()})
            if rest == ["transitions"] and m == "POST":
                return await self._do_transition(request, issue)
        return self._error(404, [f"null for uri: {request.path}"])

    # --- handlers ----------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.user is not None:
            expected = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
            return header == f"Basic {expected}"
        return header == f"Bearer {self.token}"

    def _server_info(self) -> web.Response:
        cloud = self.deployment == "Cloud"
        version = [1001, 0, 0] if cloud else [9, 12, 2]
        return web.json_response(
            {
                "baseUrl": self.url,
                "version": ".".join(map(str, version)) + ("-SNAPSHOT" if cloud else ""),
                "versionNumbers": version,
                "deploymentType": self.deployment,
                "buildNumber": 100250 if cloud else 9120002,
                "serverTitle": "Jira emulator",
            }
        )

    def _myself(self) -> web.Response:
        if self.deployment == "Cloud":
            body = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": self.user}
        else:
            body = {"name": "patchgate", "key": "patchgate"}
        return web.json_response({**body, "displayName": "PatchGate", "active": True})

    async def _create_issue(self, request: web.Request) -> web.StreamResponse:
        data = await request.json()
        fields = data.get("fields") or {}
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            errors["project"] = "valid project is required"
        issue_type = (fields.get("issuetype") or {}).get("name")
        if issue_type not in self.issue_types:
            errors["issuetype"] = "valid issue type is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        priority = fields.get("priority")
        if priority is not None and priority.get("name") not in self.priorities:
            errors["priority"] = f"Priority name '{priority.get('name')}' is not valid"
        labels = fields.get("labels") or []
        if any(" " in str(x) for x in labels):
            errors["labels"] = "The label can't contain spaces."
        if errors:
            return self._error(400, [], errors)
        issue = self._create(fields, visible=False)
        if self._lose_creates > 0:
            self._lose_creates -= 1
            assert request.transport is not None
            request.transport.abort()  # created, but the answer never arrives
            return web.Response(status=201)
        return web.json_response(
            {"id": issue.id, "key": issue.key, "self": f"{self.url}/rest/api/2/issue/{issue.id}"},
            status=201,
        )

    def _create(self, fields: dict[str, Any], *, visible: bool) -> FakeIssue:
        self._seq += 1
        project = (fields.get("project") or {}).get("key", "OPS")
        key = f"{project}-{self._seq}"
        lag = 0.0 if visible or self.deployment != "Cloud" else self.search_lag
        issue = FakeIssue(
            id=str(10000 + self._seq),
            key=key,
            fields=dict(fields),
            visible_at=time.monotonic() + lag,
        )
        self.issues[key] = issue
        return issue

    async def _add_comment(self, request: web.Request, issue: FakeIssue) -> web.Response:
        data = await request.json()
        body = data.get("body")
        if not body:
            return self._error(400, [], {"comment": "Comment body can not be empty!"})
        comment = self._new_comment(issue, body, {"displayName": "PatchGate"})
        return web.json_response(comment, status=201)

    def _new_comment(self, issue: FakeIssue, body: str, author: dict[str, Any]) -> dict[str, Any]:
        self._comment_seq += 1
        comment = {
            "id": str(20000 + self._comment_seq),
            "body": body,
            "author": author,
            "updateAuthor": author,
            "created": "2026-01-04T02:00:00.000+0000",
            "updated": "2026-01-04T02:00:00.000+0000",
        }
        issue.comments.append(comment)
        return comment

    async def _do_transition(self, request: web.Request, issue: FakeIssue) -> web.Response:
        data = await request.json()
        wanted = str((data.get("transition") or {}).get("id"))
        match = next((t for t in self.transitions if t["id"] == wanted), None)
        if match is None:
            return self._error(400, [f"Transition id '{wanted}' is not valid for this issue."], {})
        issue.status, issue.category = match["to"], match["category"]
        return web.Response(status=204)

    def _tjson(self) -> list[dict[str, Any]]:
        return [
            {
                "id": t["id"],
                "name": t["name"],
                "to": {
                    "name": t["to"],
                    "statusCategory": {
                        "key": t["category"],
                        "name": _CATEGORY_NAMES[t["category"]],
                    },
                },
                "hasScreen": False,
            }
            for t in self.transitions
        ]

    # --- search --------------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.method == "POST":
            return dict(await request.json())
        return dict(request.query)

    def _matching(self, jql: str) -> list[FakeIssue] | web.Response:
        text = re.split(r"(?i)\s+ORDER\s+BY\s+", jql)[0].strip()
        clauses = [c for c in re.split(r"(?i)\s+AND\s+", text) if c.strip()]
        tests = []
        for clause in clauses:
            m = _CLAUSE.match(clause)
            if m is None:
                return self._error(
                    400, [f"Error in the JQL Query: cannot parse {clause.strip()!r}"], {}
                )
            tests.append((m.group(1).lower(), m.group(2), m.group(3)))
        now = time.monotonic()
        found = []
        for issue in self.issues.values():
            if issue.visible_at > now:
                continue
            ok = True
            for name, op, value in tests:
                if name == "labels":
                    hit = value in issue.labels
                elif name == "statuscategory":
                    hit = _CATEGORY_NAMES[issue.category].lower() == value.lower()
                elif name == "status":
                    hit = issue.status.lower() == value.lower()
                elif name == "issuetype":
                    kind = (issue.fields.get("issuetype") or {}).get("name", "")
                    hit = str(kind).lower() == value.lower()
                else:
                    hit = issue.key.split("-")[0] == value
                ok = ok and (hit if op == "=" else not hit)
            if ok:
                found.append(issue)
        if re.search(r"(?i)ORDER\s+BY\s+created\s+DESC", jql):
            found.reverse()
        return found

    async def _search_classic(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        found = self._matching(str(params.get("jql", "")))
        if isinstance(found, web.Response):
            return found
        start = int(params.get("startAt", 0) or 0)
        size = min(int(params.get("maxResults", self.page_size) or self.page_size), self.page_size)
        page = found[start : start + size]
        return web.json_response(
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(found),
                "issues": [self._issue_json(i, expand=params.get("expand")) for i in page],
            }
        )

    async def _search_jql(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        found = self._matching(str(params.get("jql", "")))
        if isinstance(found, web.Response):
            return found
        token = params.get("nextPageToken")
        start = int(str(token).removeprefix("page-")) if token else 0
        size = min(int(params.get("maxResults", self.page_size) or self.page_size), self.page_size)
        page = found[start : start + size]
        body: dict[str, Any] = {
            "issues": [self._issue_json(i, expand=params.get("expand")) for i in page],
            "isLast": start + size >= len(found),
        }
        if not body["isLast"]:
            body["nextPageToken"] = f"page-{start + size}"
        return web.json_response(body)

    def _issue_json(self, issue: FakeIssue, *, expand: Any = None) -> dict[str, Any]:
        fields = dict(issue.fields)
        fields["status"] = {
            "name": issue.status,
            "statusCategory": {"key": issue.category, "name": _CATEGORY_NAMES[issue.category]},
        }
        fields["comment"] = {
            "comments": list(issue.comments),
            "maxResults": len(issue.comments),
            "total": len(issue.comments),
            "startAt": 0,
        }
        body: dict[str, Any] = {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.url}/rest/api/2/issue/{issue.id}",
            "fields": fields,
        }
        if "changelog" in str(expand or ""):
            body["changelog"] = {
                "startAt": 0,
                "maxResults": len(issue.histories),
                "total": len(issue.histories),
                "histories": list(issue.histories),
            }
        return body

    def _custom_fields_json(self) -> list[dict[str, Any]]:
        return [
            {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [f"cf[{fid.rsplit('_', 1)[-1]}]", name],
                "schema": {
                    "type": kind,
                    "custom": f"com.atlassian.jira.plugin.system.customfieldtypes:{kind}",
                    "customId": int(fid.rsplit("_", 1)[-1]),
                },
            }
            for fid, name, kind in self.custom_fields
        ]

    # --- people and webhooks (issue 23) ------------------------------------------------------

    def add_person(
        self, name: str, *, email: str | None = None, display: str | None = None
    ) -> JiraPerson:
        digest = hashlib.sha256(name.encode()).hexdigest()[:24]
        person = JiraPerson(
            name=name,
            account_id=f"712020:{digest}",
            email=email,
            display=display or name.title(),
        )
        self.people[name] = person
        return person

    def add_webhook(
        self, url: str, *, secret: str | None = None, headers: dict[str, str] | None = None
    ) -> Webhook:
        hook = Webhook(url, secret, dict(headers or {}))
        self.webhooks.append(hook)
        return hook

    async def create_as(
        self, person: str, *, issue_type: str, summary: str, fields: dict[str, Any]
    ) -> FakeIssue:
        """A person creates an issue (e.g. an exception request with custom fields); the
        webhooks fire ``jira:issue_created``."""
        who = self.people[person].json(self.deployment)
        issue = self._create(
            {
                "project": {"key": self.projects[0]},
                "issuetype": {"name": issue_type},
                "summary": summary,
                "reporter": who,
                **fields,
            },
            visible=True,
        )
        await self._fire(
            {
                "timestamp": int(time.time() * 1000),
                "webhookEvent": "jira:issue_created",
                "issue_event_type_name": "issue_created",
                "user": who,
                "issue": self._issue_json(issue),
            }
        )
        return issue

    async def comment_as(self, key: str, person: str, body: str) -> dict[str, Any]:
        """A person comments on an issue (as in Jira's UI); the webhooks fire."""
        issue = self.issues[key]
        who = self.people[person].json(self.deployment)
        comment = self._new_comment(issue, body, who)
        await self._fire(
            {
                "timestamp": int(time.time() * 1000),
                "webhookEvent": "comment_created",
                "comment": {**comment, "self": f"{self.url}/rest/api/2/issue/{issue.id}/comment"},
                "issue": self._issue_json(issue),
            }
        )
        return comment

    async def transition_as(self, key: str, person: str, name: str) -> dict[str, Any]:
        """A person moves an issue through the transition named ``name``; the webhooks
        fire ``jira:issue_updated`` with the changelog."""
        issue = self.issues[key]
        match = next(t for t in self.transitions if t["name"].lower() == name.lower())
        before = issue.status
        issue.status, issue.category = match["to"], match["category"]
        who = self.people[person].json(self.deployment)
        self._history_seq += 1
        history = {
            "id": str(30000 + self._history_seq),
            "author": who,
            "created": "2026-01-04T02:00:00.000+0000",
            "items": [
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fieldId": "status",
                    "from": "1",
                    "fromString": before,
                    "to": "2",
                    "toString": issue.status,
                }
            ],
        }
        issue.histories.append(history)
        payload: dict[str, Any] = {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": who,
            "issue": self._issue_json(issue),
            "changelog": {"id": history["id"], "items": history["items"]},
        }
        if self.transition_in_webhook:
            payload["transition"] = {
                "workflowId": 1,
                "workflowName": "PatchGate change",
                "transitionId": int(match["id"]),
                "transitionName": match["name"],
                "from_status": before,
                "to_status": issue.status,
            }
        await self._fire(payload)
        return history

    async def _fire(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        for hook in self.webhooks:
            headers = {"Content-Type": "application/json", **hook.headers}
            if self.deployment == "Cloud":
                headers["X-Atlassian-Webhook-Identifier"] = str(uuid.uuid4())
                headers["X-Atlassian-Webhook-Retry"] = "0"
                if hook.secret is not None:
                    mac = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
                    headers["X-Hub-Signature"] = f"sha256={mac}"
            delivery = WebhookDelivery(hook.url, headers, body)
            self.deliveries.append(delivery)
            await self._send(delivery)

    def deliveries_of(self, comment: dict[str, Any]) -> list[WebhookDelivery]:
        """The webhook deliveries that carry one comment (``comment_as``'s answer): with
        a real ``serve`` the bot's own comments fire webhooks too, so the latest delivery
        may be one of those."""
        found = []
        for delivery in self.deliveries:
            sent = json.loads(delivery.body).get("comment") or {}
            if sent.get("id") == comment["id"]:
                found.append(delivery)
        return found

    async def redeliver(
        self,
        delivery: WebhookDelivery,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        url: str | None = None,
    ) -> WebhookDelivery:
        """Send a recorded delivery again (a replay), URL, headers and body changed as given."""
        again = WebhookDelivery(
            url or delivery.url,
            {**delivery.headers, **(headers or {})},
            delivery.body if body is None else body,
        )
        self.deliveries.append(again)
        await self._send(again)
        return again

    async def _send(self, delivery: WebhookDelivery) -> None:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    delivery.url,
                    data=delivery.body,
                    headers=delivery.headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response,
            ):
                delivery.status = response.status
                delivery.answer = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            delivery.status = 0

    # --- errors --------------------------------------------------------------------------------

    def _error(
        self, status: int, messages: list[str], errors: dict[str, str] | None = None
    ) -> web.Response:
        return web.json_response({"errorMessages": messages, "errors": errors or {}}, status=status)

    def _failure(self, failure: _Failure) -> web.Response:
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        if failure.plain:
            return web.Response(
                status=failure.status,
                text="Service Unavailable",
                content_type="text/plain",
                headers=headers,
            )
        messages = {429: ["Rate limit exceeded."], 503: ["Service temporarily unavailable."]}
        response = self._error(failure.status, messages.get(failure.status, ["error"]), {})
        response.headers.update(headers)
        return response


_FIELDS: list[dict[str, Any]] = [
    {
        "id": fid,
        "key": fid,
        "name": name,
        "custom": False,
        "navigable": True,
        "searchable": True,
        "clauseNames": [fid],
        "schema": {"type": kind, "system": fid},
    }
    for fid, name, kind in (
        ("summary", "Summary", "string"),
        ("description", "Description", "string"),
        ("labels", "Labels", "array"),
        ("status", "Status", "status"),
        ("priority", "Priority", "priority"),
        ("project", "Project", "project"),
        ("issuetype", "Issue Type", "issuetype"),
    )
]
