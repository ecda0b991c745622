"""Exception requests made in Jira: an issue of ``PATCHGATE_JIRA_EXCEPTION_ISSUE_TYPE`` read
into ``workflows.exceptions.RequestFields`` through ``PATCHGATE_JIRA_EXCEPTION_FIELDS``.

A value may be text, a select option (``{"value": …}``), a user picker (a Jira user,
mapped to a Slack user as voters are) or, for the expiry, a date (``2026-03-20``: the end
of that day, UTC) or a date-time with an offset. What cannot be read becomes one of the
request's problems, told on the issue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from integrations.jira_events import JiraIssue, JiraUser, user_of
from workflows.exceptions import RequestFields


@dataclass
class RequestRules:
    issue_type: str
    fields: Mapping[str, str]  # request key -> Jira field id
    operators: frozenset[str]
    max_days: int


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("value") if "value" in value else value.get("name")
    if isinstance(value, list) and value:
        return _text(value[0])
    if isinstance(value, str | int) and str(value).strip():
        return str(value).strip()
    return None


def _expiry(value: Any) -> tuple[dt.datetime | None, str | None]:
    text = _text(value)
    if text is None:
        return None, None
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(23, 59), tzinfo=dt.UTC), None
        when = dt.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
        return when.astimezone(dt.UTC), None
    except ValueError:
        return None, f"expiry {text[:40]!r} is not a date (YYYY-MM-DD) or a Jira date-time"


async def read_request(
    issue: JiraIssue,
    rules: RequestRules,
    slack_user: Callable[[JiraUser], Awaitable[str | None]],
) -> tuple[RequestFields, str | None]:
    """The request's fields, and its reporter as a Slack user (None: not mapped)."""
    values = {name: issue.value(field_id) for name, field_id in rules.fields.items()}
    problems: list[str] = []
    owner_raw = values.get("owner")
    owner: str | None
    if isinstance(owner_raw, dict) and any(
        k in owner_raw for k in ("accountId", "name", "emailAddress")
    ):
        person = user_of(owner_raw)
        owner = await slack_user(person)
        if owner is None:
            problems.append(f"owner {person.label} is not mapped to a Slack user")
    else:
        owner = _text(owner_raw)
    expires_at, bad_date = _expiry(values.get("expires"))
    if bad_date:
        problems.append(bad_date)
    fields = RequestFields(
        host=_text(values.get("host")),
        package=_text(values.get("package")),
        cve=_text(values.get("cve")),
        owner=owner,
        reason=_text(values.get("reason")),
        expires_at=expires_at,
        problems=tuple(problems),
    )
    return fields, await slack_user(issue.reporter)
