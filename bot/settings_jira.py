"""Settings of Jira votes and change tickets (issue 23), mixed into ``bot.settings.Settings``
(kept apart so that file stays small). Flat PATCHGATE_* variables like the others.
"""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
MIN_SECRET = 24


def split_names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class JiraVoteSettings(BaseSettings):
    # The shared secret of Jira webhooks (POST /jira/webhook/<secret>, or the header
    # X-PatchGate-Webhook-Secret, or Jira's own X-Hub-Signature HMAC); unset: no route.
    jira_webhook_secret: SecretStr | None = None
    # Deliveries whose Jira timestamp is older than this many seconds are refused (replays).
    jira_webhook_max_age: float = Field(default=300, gt=0)
    # Seconds between JQL polls of the open change tickets (for a Jira that cannot reach
    # PatchGate); 0 turns polling off.
    jira_poll_interval: float = Field(default=0, ge=0)
    # Jira user (Cloud account id, Server user name or key, or e-mail) = Slack user ID,
    # comma-separated; users not listed are looked up in Slack by their Jira e-mail.
    jira_user_map: str = ""
    # Transitions (by name) or statuses reached that count as a vote; comment commands.
    jira_approve_transitions: str = "Approve,Approved"
    jira_reject_transitions: str = "Reject,Rejected"
    jira_approve_command: str = "/approve"
    jira_reject_command: str = "/reject"
    # The issue type of change tickets (default: PATCHGATE_JIRA_ISSUE_TYPE).
    jira_change_issue_type: str | None = None
    # Exception requests made in Jira: the issue type (unset: off), and where each value
    # is read: request key=Jira field id, for host, package, cve, owner, reason, expires.
    jira_exception_issue_type: str | None = None
    jira_exception_fields: str = "reason=description,expires=duedate"

    @field_validator("jira_exception_fields")
    @classmethod
    def _exception_fields(cls, value: str) -> str:
        known = ("host", "package", "cve", "owner", "reason", "expires")
        for item in split_names(value):
            name, sep, field_id = (part.strip() for part in item.partition("="))
            if not sep or name not in known or not re.fullmatch(r"[A-Za-z0-9_]+", field_id):
                raise ValueError(
                    f"{item!r} is not of the form key=fieldId (key one of {', '.join(known)}; "
                    "a field id such as customfield_10050 or description)"
                )
        return value

    @property
    def jira_exception_field_map(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in split_names(self.jira_exception_fields))
        return {name.strip(): field_id.strip() for name, _, field_id in pairs}

    @field_validator("jira_webhook_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET:
            raise ValueError(f"must be at least {MIN_SECRET} characters")
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_\-]+", value.get_secret_value()):
            raise ValueError("may hold only letters, digits, '-' and '_' (it is part of a URL)")
        return value

    @field_validator("jira_user_map")
    @classmethod
    def _user_map(cls, value: str) -> str:
        for item in split_names(value):
            jira, sep, slack = (part.strip() for part in item.rpartition("="))
            if not sep or not jira or not _SLACK_USER.fullmatch(slack):
                raise ValueError(
                    f"{item!r} is not of the form jira-user=SLACK_USER_ID (a U… or W… ID)"
                )
        return value

    @field_validator("jira_approve_command", "jira_reject_command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not re.fullmatch(r"\S{2,32}", value.strip()):
            raise ValueError("must be one word of 2 to 32 characters, e.g. /approve")
        return value.strip()

    @property
    def jira_user_pairs(self) -> dict[str, str]:
        pairs = (item.rpartition("=") for item in split_names(self.jira_user_map))
        return {jira.strip().lower(): slack.strip() for jira, _, slack in pairs}
