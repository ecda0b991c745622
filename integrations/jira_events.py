"""What Jira tells PatchGate (issue 23): webhook deliveries and polled issues, read into
:class:`JiraEvent` (a comment, or a status change with its transition), Jira Cloud and
Server/Data Center shapes alike.

Webhooks (``jira:issue_updated`` with a ``changelog``, ``comment_created``; Server's
``issue_commented`` updates carry the comment too) are parsed strictly: a body that is
not a JSON object of a known event with an issue key is refused with a reason, never
half-read. A status change names the status reached (``changelog`` item ``status``,
``toString``) and, when the payload has one (workflow post-function webhooks), the
transition's id and name.

:class:`JiraPoller` reads the same events with JQL through the ``jira`` client (the
exception tickets' client, thread pool and error translation): the open change tickets,
their comments and their changelog. An event's ``source`` (``comment:<id>``,
``changelog:<id>``) is the same on both paths, so the domain counts a vote once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jira import JIRA

from integrations.jira import JiraTicketer

MAX_BODY = 256 * 1024  # bytes of a webhook delivery
CHANGE_LABEL = "pg-cause-change"  # workflows.tickets.labels_for(…, "change")
KNOWN_EVENTS = frozenset(
    {"jira:issue_created", "jira:issue_updated", "comment_created", "comment_updated"}
)
REQUEST_KEYS = ("host", "package", "cve", "owner", "reason", "expires")


class BadWebhook(ValueError):
    """A webhook body PatchGate does not accept (the message says why)."""


@dataclass(frozen=True)
class JiraUser:
    account_id: str | None = None  # Cloud
    name: str | None = None  # Server/DC user name
    key: str | None = None  # Server/DC user key
    email: str | None = None
    display: str | None = None

    @property
    def label(self) -> str:
        return self.account_id or self.name or self.key or self.email or "unknown"

    def ids(self) -> list[str]:
        """Every name the user map may list this user by."""
        return [x for x in (self.account_id, self.name, self.key, self.email) if x]


@dataclass(frozen=True)
class JiraEvent:
    issue_key: str
    source: str  # comment:<id> | changelog:<id>
    user: JiraUser
    comment: str | None = None
    to_status: str | None = None
    transition: str | None = None  # the transition's name, when Jira said
    transition_id: str | None = None


@dataclass(frozen=True)
class JiraIssue:
    """An issue as Jira sent it (a created issue, or one polled): its type, reporter and
    the values of the fields an exception request is read from."""

    key: str
    issue_type: str | None
    reporter: JiraUser
    raw_fields: dict[str, Any]

    def value(self, field_id: str) -> Any:
        return self.raw_fields.get(field_id)


@dataclass(frozen=True)
class Delivery:
    """One parsed webhook delivery."""

    event: str
    timestamp_ms: int | None
    events: tuple[JiraEvent, ...]
    created: JiraIssue | None = None  # jira:issue_created


def _issue(raw: dict[str, Any]) -> JiraIssue:
    fields = raw.get("fields")
    if not isinstance(fields, dict):
        raise BadWebhook("issue without fields")
    kind = fields.get("issuetype")
    return JiraIssue(
        key=str(raw["key"]),
        issue_type=_text(kind.get("name")) if isinstance(kind, dict) else None,
        reporter=_user(fields.get("reporter")),
        raw_fields=fields,
    )


def user_of(raw: Any) -> JiraUser:
    """A Jira user (Cloud or Server shape) as Jira sent it."""
    return _user(raw)


def _user(raw: Any) -> JiraUser:
    if not isinstance(raw, dict):
        return JiraUser()

    def text(name: str) -> str | None:
        value = raw.get(name)
        return str(value)[:255] if isinstance(value, str | int) and str(value) else None

    return JiraUser(
        account_id=text("accountId"),
        name=text("name"),
        key=text("key"),
        email=text("emailAddress"),
        display=text("displayName"),
    )


def _comment_event(issue_key: str, raw: Any) -> JiraEvent:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str | int):
        raise BadWebhook("comment without an id")
    body = raw.get("body")
    if not isinstance(body, str):
        raise BadWebhook("comment body is not text (Jira REST v2 webhooks send plain text)")
    return JiraEvent(
        issue_key=issue_key,
        source=f"comment:{raw['id']}",
        user=_user(raw.get("author")),
        comment=body[:10_000],
    )


def parse_webhook(body: bytes) -> Delivery:
    """A webhook body as a :class:`Delivery`; :class:`BadWebhook` if PatchGate cannot take it."""
    if len(body) > MAX_BODY:
        raise BadWebhook(f"body over {MAX_BODY} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadWebhook(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise BadWebhook("not a JSON object")
    event = data.get("webhookEvent")
    if not isinstance(event, str) or event not in KNOWN_EVENTS:
        raise BadWebhook(f"unexpected webhookEvent {str(event)[:60]!r}")
    stamp = data.get("timestamp")
    if stamp is not None and (not isinstance(stamp, int) or isinstance(stamp, bool)):
        raise BadWebhook("timestamp is not a whole number of milliseconds")
    issue = data.get("issue")
    key = issue.get("key") if isinstance(issue, dict) else None
    if not isinstance(key, str) or not key or len(key) > 64:
        raise BadWebhook("no issue key")
    events: list[JiraEvent] = []
    assert isinstance(issue, dict)
    created = _issue(issue) if event == "jira:issue_created" else None
    if "comment" in data:
        events.append(_comment_event(key, data["comment"]))
    changelog = data.get("changelog")
    if event == "jira:issue_updated" and changelog is not None:
        if not isinstance(changelog, dict) or not isinstance(changelog.get("items"), list):
            raise BadWebhook("changelog without items")
        raw_transition = data.get("transition")
        transition: dict[str, Any] = raw_transition if isinstance(raw_transition, dict) else {}
        status = _status_item(changelog["items"])
        if status is not None:
            if not isinstance(changelog.get("id"), str | int):
                raise BadWebhook("changelog without an id")
            events.append(
                JiraEvent(
                    issue_key=key,
                    source=f"changelog:{changelog['id']}",
                    user=_user(data.get("user")),
                    to_status=status,
                    transition=_text(transition.get("transitionName")),
                    transition_id=_text(transition.get("transitionId")),
                )
            )
    return Delivery(event=event, timestamp_ms=stamp, events=tuple(events), created=created)


def _text(value: Any) -> str | None:
    return str(value)[:255] if isinstance(value, str | int) and str(value) else None


def _status_item(items: Sequence[Any]) -> str | None:
    for item in items:
        if isinstance(item, dict) and item.get("field") == "status":
            return _text(item.get("toString"))
    return None


@dataclass(frozen=True)
class Polled:
    events: list[JiraEvent]
    requests: list[JiraIssue]  # open issues of the exception request type


class JiraPoller:
    """The open change tickets (and exception requests) with their comments and status
    changes, read with JQL."""

    def __init__(
        self,
        ticketer: JiraTicketer,
        *,
        label: str = CHANGE_LABEL,
        request_type: str | None = None,
    ) -> None:
        self.ticketer = ticketer
        self.jql = f'labels = "{label}" AND statusCategory != Done ORDER BY created ASC'
        self.request_jql = (
            f'issuetype = "{request_type}" AND statusCategory != Done ORDER BY created ASC'
            if request_type
            else None
        )

    async def poll(self) -> Polled:
        return await self.ticketer.call("poll", self._read)

    async def events(self) -> list[JiraEvent]:
        return (await self.poll()).events

    def _read(self, jira: JIRA) -> Polled:
        polled = Polled([], [])
        self._read_jql(jira, self.jql, polled, requests=False)
        if self.request_jql is not None:
            self._read_jql(jira, self.request_jql, polled, requests=True)
        return polled

    def _read_jql(self, jira: JIRA, jql: str, polled: Polled, *, requests: bool) -> None:
        found = polled.events
        fields = "comment,status,summary" + (",*all" if requests else "")
        issues = jira.search_issues(jql, maxResults=0, fields=fields, expand="changelog")
        for issue in issues:
            raw = issue.raw or {}
            key = str(raw.get("key") or issue.key)
            if requests:
                try:
                    polled.requests.append(_issue(raw))
                except BadWebhook:
                    continue
            block = (raw.get("fields") or {}).get("comment")
            listed = block.get("comments") if isinstance(block, dict) else None
            if not isinstance(listed, list) or (
                isinstance(block, dict) and int(block.get("total") or 0) > len(listed)
            ):  # not sent, or cut short: read them all
                listed = [c.raw for c in jira.comments(key)]
            for comment in listed:
                try:
                    found.append(_comment_event(key, comment))
                except BadWebhook:
                    continue  # not a text comment (e.g. ADF from API v3): not a vote
            changelog = raw.get("changelog") or {}
            for history in changelog.get("histories") or []:
                status = _status_item(history.get("items") or [])
                if status is not None and isinstance(history.get("id"), str | int):
                    found.append(
                        JiraEvent(
                            issue_key=key,
                            source=f"changelog:{history['id']}",
                            user=_user(history.get("author")),
                            to_status=status,
                        )
                    )
