"""Jira: the outbox deliverer for topic ``ticket``, on the ``jira`` library.

- Jira Cloud (``user`` = e-mail, ``token`` = API token: basic auth) or Server/Data Center
  (``token`` = personal access token, no user: bearer auth).
- The client is built lazily, in the worker thread, on first use: its constructor calls
  ``serverInfo``, and a Jira outage must never stop ``serve``. A failed build is retried
  at the next delivery.
- Every HTTP call has a timeout; the library's own retries are off (``max_retries=0``):
  the outbox retries, with backoff and ``Retry-After``.
- Blocking calls run in a dedicated thread pool, never on the event loop.
- ``JIRAError`` and ``requests`` errors become ``TransientDeliveryError`` (connection
  refused or reset, timeouts, 5xx, 429 with its ``Retry-After``) or
  ``PermanentDeliveryError`` (400, 401, 403, 404 and other 4xx). Messages never carry
  request headers (the library's ``str(JIRAError)`` does, with the credentials).
- Creating is idempotent: the ticket carries its outbox key as a label, searched for
  before creating (again). Jira Cloud's search is eventually consistent, so on a retry
  that finds nothing the search is repeated once after ``search_settle`` seconds.
  Comments carry their outbox key as a marker line and are looked up on a retry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError

from workflows.errors import PermanentDeliveryError, TransientDeliveryError
from workflows.outbox import DeliveryItem
from workflows.ports import Delivery
from workflows.tickets import refine_severity

log = logging.getLogger("patchgate.jira")

T = TypeVar("T")

_TRANSIENT_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class JiraConfig:
    url: str
    token: str
    user: str | None = None  # set for Cloud (e-mail); None for a Server/DC PAT
    project: str | None = None
    issue_type: str = "Task"
    done_transition: str = "Done"
    priorities: Mapping[str, str] = field(default_factory=dict)
    # Each threshold the host's risk score (0-100, latest assessment) reaches raises the
    # ticket's severity one level before it is mapped to a priority (refine_severity).
    risk_thresholds: tuple[int, ...] = ()
    timeout: float = 10.0
    search_settle: float = 5.0
    threads: int = 4
    # change tickets (issue 23): their issue type, and the vote commands their texts name
    change_issue_type: str | None = None
    approve_command: str = "/approve"
    reject_command: str = "/reject"

    def fill(self, text: str) -> str:
        """A ticket text with the configured vote commands in place of the domain's
        ``%APPROVE%`` / ``%REJECT%`` (workflows.tickets)."""
        return text.replace("%APPROVE%", self.approve_command).replace(
            "%REJECT%", self.reject_command
        )


def translate(exc: BaseException, what: str) -> Exception:
    """A vendor error as the project's transient or permanent delivery error."""
    if isinstance(exc, JIRAError):
        status = exc.status_code
        text = (exc.text or "").strip().replace("\n", " ")[:500]
        message = f"Jira {what}: HTTP {status}: {text}" if status else f"Jira {what}: {text}"
        if status is None or status >= 500 or status in _TRANSIENT_STATUS:
            return TransientDeliveryError(message, retry_after=_retry_after(exc))
        return PermanentDeliveryError(message)
    if isinstance(exc, requests.RequestException):
        return TransientDeliveryError(f"Jira {what}: {type(exc).__name__}: {_short(exc)}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def _short(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:300]


def _retry_after(exc: JIRAError) -> float | None:
    response = exc.response
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def _marker(key: str) -> str:
    return f"[patchgate:{key}]"


class JiraTicketer:
    """Implements ``workflows.outbox.Deliverer`` for tickets."""

    def __init__(
        self,
        config: JiraConfig,
        *,
        pool: ThreadPoolExecutor | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._pool = pool or ThreadPoolExecutor(
            max_workers=config.threads, thread_name_prefix="jira"
        )
        self._own_pool = pool is None
        self._sleep = sleep
        self._client: JIRA | None = None
        self._lock = threading.Lock()
        self._cloud = False

    # --- plumbing ------------------------------------------------------------------------

    def _jira(self) -> JIRA:
        """The client, built on first use (in a worker thread: it calls serverInfo)."""
        with self._lock:
            if self._client is None:
                auth: dict[str, Any] = (
                    {"basic_auth": (self.config.user, self.config.token)}
                    if self.config.user
                    else {"token_auth": self.config.token}
                )
                client = JIRA(
                    server=self.config.url,
                    timeout=self.config.timeout,
                    max_retries=0,
                    get_server_info=True,
                    **auth,
                )
                self._cloud = client.deploymentType == "Cloud"
                self._client = client
            return self._client

    async def call(self, what: str, call: Callable[[JIRA], T]) -> T:
        """Run ``call`` with the client in the Jira thread pool, errors translated."""
        return await self._run(what, call)

    async def _run(self, what: str, call: Callable[[JIRA], T]) -> T:
        def work() -> T:
            try:
                return call(self._jira())
            except (JIRAError, requests.RequestException) as exc:
                raise translate(exc, what) from None

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, work)

    def close(self) -> None:
        if self._own_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]

    # --- the deliverer -----------------------------------------------------------------------

    async def deliver(self, item: DeliveryItem) -> Delivery:
        payload = item.payload
        action = payload.get("action")
        if action == "create":
            return await self._run(
                "create", lambda j: self._create(j, payload, retry=item.attempts > 0)
            )
        if action == "adopt":
            return await self._run("adopt", lambda j: self._adopt(j, str(payload["issue_key"])))
        issue_key = payload.get("issue_key") or (
            item.parent.data.get("key") if item.parent is not None else None
        )
        if not issue_key:
            raise PermanentDeliveryError(f"{item.key}: no Jira key known for this ticket")
        marker = str(payload.get("marker") or item.key)
        body = self.config.fill(str(payload.get("body") or ""))
        if action == "comment":
            return await self._run(
                "comment", lambda j: self._comment(j, str(issue_key), body, marker)
            )
        if action == "resolve":
            return await self._run(
                "resolve", lambda j: self._resolve(j, str(issue_key), body, marker)
            )
        raise PermanentDeliveryError(f"{item.key}: unknown ticket action {action!r}")

    # --- blocking work (worker thread) ---------------------------------------------------------

    def _search(self, jira: JIRA, jql: str) -> list[Any]:
        found = jira.search_issues(jql, maxResults=0, fields=["summary", "status", "labels"])
        return list(found)

    def _create(self, jira: JIRA, payload: Mapping[str, Any], *, retry: bool) -> Delivery:
        marker_label = str(payload["idempotency_label"])
        by_key = f'labels = "{marker_label}" ORDER BY created ASC'
        found = self._search(jira, by_key)
        if not found and retry and self._cloud and self.config.search_settle > 0:
            # The earlier attempt may have created it and Cloud's index may lag.
            self._sleep(self.config.search_settle)
            found = self._search(jira, by_key)
        if found:
            key = found[0].key
            return Delivery(
                {"key": key, "url": self.browse(key), "created": False, "found_by": "outbox-key"}
            )
        labels = [str(x) for x in payload.get("labels") or []]
        if payload.get("dedupe", True) and len(labels) >= 3:
            jql = (
                " AND ".join(f'labels = "{x}"' for x in labels[:3])
                + " AND statusCategory != Done ORDER BY created DESC"
            )
            existing = self._search(jira, jql)
            if existing:
                key = existing[0].key
                body = (
                    f"{payload.get('summary')}\n\n{payload.get('description')}\n\n"
                    f"{_marker(marker_label)}"
                )
                jira.add_comment(key, body)
                return Delivery(
                    {"key": key, "url": self.browse(key), "created": False, "found_by": "labels"}
                )
        project = payload.get("project") or self.config.project
        if not project:
            raise PermanentDeliveryError(
                "no Jira project: set PATCHGATE_JIRA_PROJECT or the plan's jira.project"
            )
        severity, priority, why = self.priority_for(payload)
        description = self.config.fill(str(payload.get("description") or ""))
        if why:
            description += f"\n{why}"
        fields: dict[str, Any] = {
            "project": {"key": str(project)},
            "issuetype": {"name": self._issue_type(payload)},
            "summary": str(payload.get("summary") or "")[:255],
            "description": description,
            "labels": [*labels, marker_label],
        }
        if priority:
            fields["priority"] = {"name": priority}
        issue = jira.create_issue(fields=fields, prefetch=False)
        log.info(
            "jira: created %s for %s/%s", issue.key, payload.get("subject"), payload.get("cause")
        )
        return Delivery(
            {
                "key": issue.key,
                "url": self.browse(issue.key),
                "created": True,
                "found_by": None,
                "severity": severity,
                "priority": priority,
            }
        )

    def _issue_type(self, payload: Mapping[str, Any]) -> str:
        if payload.get("issue_type"):
            return str(payload["issue_type"])
        if payload.get("cause") == "change" and self.config.change_issue_type:
            return self.config.change_issue_type
        return self.config.issue_type

    def browse(self, key: str) -> str:
        return f"{self.config.url.rstrip('/')}/browse/{key}"

    def priority_for(self, payload: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
        """The ticket's severity refined by the host's risk score, its Jira priority (None
        when the mapping names none) and, when the score raised it, a line saying why."""
        base = str(payload.get("severity") or "").lower()
        raw = payload.get("risk_score")
        score = int(raw) if isinstance(raw, int | float) else None
        severity, raised = refine_severity(
            base, risk_score=score, thresholds=self.config.risk_thresholds
        )
        priority = self.config.priorities.get(severity)
        why = None
        if raised:
            reached = [t for t in self.config.risk_thresholds if score is not None and score >= t]
            why = (
                f"Priority: {priority or severity} (severity {base}, raised {raised} "
                f"level{'s' if raised > 1 else ''}: risk score {score} reached "
                f"{', '.join(map(str, reached))})"
            )
        return severity, priority, why

    def _adopt(self, jira: JIRA, issue_key: str) -> Delivery:
        """An issue made in Jira (an exception request): it exists, here is its key."""
        issue = jira.issue(issue_key, fields="summary")
        return Delivery(
            {"key": issue.key, "url": self.browse(issue.key), "created": False, "found_by": "jira"}
        )

    def _has_comment(self, jira: JIRA, issue_key: str, marker: str) -> bool:
        return any(marker in (c.body or "") for c in jira.comments(issue_key))

    def _comment(self, jira: JIRA, issue_key: str, body: str, marker: str) -> Delivery:
        tag = _marker(marker)
        if not self._has_comment(jira, issue_key, tag):
            jira.add_comment(issue_key, f"{body}\n\n{tag}")
        return Delivery({"key": issue_key, "commented": True})

    def _resolve(self, jira: JIRA, issue_key: str, body: str, marker: str) -> Delivery:
        self._comment(jira, issue_key, body, marker)
        wanted = self.config.done_transition
        transitions = jira.transitions(issue_key)
        match = next(
            (t for t in transitions if str(t.get("name", "")).lower() == wanted.lower()), None
        )
        if match is None:
            log.warning(
                "jira: %s has no transition named %r (has: %s); commented only",
                issue_key,
                wanted,
                ", ".join(str(t.get("name")) for t in transitions) or "none",
            )
            return Delivery({"key": issue_key, "transitioned": False, "transition": wanted})
        jira.transition_issue(issue_key, str(match["id"]))
        return Delivery({"key": issue_key, "transitioned": True, "transition": match["name"]})


def build_ticketer(
    *,
    url: str,
    token: str,
    user: str | None,
    project: str | None,
    issue_type: str,
    done_transition: str,
    priorities: Mapping[str, str],
    timeout: float,
    search_settle: float,
    risk_thresholds: tuple[int, ...] = (),
    change_issue_type: str | None = None,
    approve_command: str = "/approve",
    reject_command: str = "/reject",
) -> JiraTicketer:
    return JiraTicketer(
        JiraConfig(
            url=url,
            token=token,
            user=user,
            project=project,
            issue_type=issue_type,
            done_transition=done_transition,
            priorities=dict(priorities),
            risk_thresholds=tuple(sorted(risk_thresholds)),
            timeout=timeout,
            search_settle=search_settle,
            change_issue_type=change_issue_type,
            approve_command=approve_command,
            reject_command=reject_command,
        )
    )
