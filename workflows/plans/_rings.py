"""A ring and what guards it: the health checks run on its hosts after patching, and the
gate (none, auto after a soak, or approval by named Slack users and groups) in front of it.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from workflows.plans._fields import (
    Amount,
    AmountField,
    At,
    Duration,
    PlanModel,
    SelectorField,
    UserGroupId,
    UserId,
)

# systemd unit names for health checks (never option-like on systemctl's command line)
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]{0,255}")
CheckType = Literal["http", "tcp", "command", "systemd", "tool"]
_CHECK_FIELDS: dict[str, CheckType] = {
    "url": "http",
    "expect_status": "http",
    "expect_body": "http",
    "port": "tcp",
    "argv": "command",
    "unit": "systemd",
}
_CHECK_REQUIRED: dict[CheckType, str | None] = {
    "http": "url",
    "tcp": "port",
    "command": "argv",
    "systemd": "unit",
    "tool": None,  # the host's backend asked for its own view of the host
}


class HealthCheck(PlanModel):
    """One check run against each host after it is patched (and rebooted).

    ``url`` may contain ``{host}`` (inventory name) and ``{address}`` (connect address).
    ``argv`` is a list run without a shell.

    ``tool``: the host's backend reports the host's own state (agent connected and
    checked in, no error or pending reboot), once per batch for the batch's hosts; it
    takes no url/port/argv/unit. ``retries``/``interval`` ask the tool again, for the
    hosts not yet well, until it reports them well or the retries run out (an agent
    reconnects some time after a reboot); ``timeout`` is the tool client's own.
    """

    name: str = Field(min_length=1)
    type: CheckType
    url: str | None = None
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    argv: list[str] | None = None
    unit: str | None = None
    timeout: Duration = dt.timedelta(seconds=10)
    retries: int = Field(default=3, ge=0)
    interval: Duration = dt.timedelta(seconds=5)

    @field_validator("url", "expect_status", "expect_body", "port", "argv", "unit")
    @classmethod
    def _applies_to_type(cls, value: Any, info: ValidationInfo) -> Any:
        check_type = info.data.get("type")
        field = info.field_name or ""
        wanted = _CHECK_FIELDS[field]
        # The default is accepted anywhere: a dumped plan carries every field.
        if check_type not in (None, wanted) and value != cls.model_fields[field].default:
            raise ValueError(f"{field} applies to {wanted} checks, not to a {check_type} check")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError("a health-check url starts with http:// or https://")
        if value is not None:
            try:
                value.format(host="h", address="a")
            except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
                raise ValueError(
                    f"url may only use the placeholders {{host}} and {{address}} ({exc})"
                ) from None
        return value

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("argv must name a program, e.g. [/usr/bin/test, -f, /run/app.pid]")
        if value is not None and any("\x00" in arg for arg in value):
            raise ValueError("argv may not contain a NUL character")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        # a systemd unit name; never option-like ("--host=...") on systemctl's command line
        if value is not None and not _UNIT.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a systemd unit name (letters, digits and : _ . @ \\ -, "
                "not starting with -)"
            )
        return value

    @model_validator(mode="after")
    def _required_for_type(self) -> Self:
        needed = _CHECK_REQUIRED[self.type]
        if needed is not None and getattr(self, needed) is None:
            raise ValueError(f"a {self.type} check needs {needed!r}")
        return self


class Approvers(PlanModel):
    """Who may decide a gate: Slack user groups and/or users, by ID."""

    groups: list[UserGroupId] = []
    users: list[UserId] = []

    def is_empty(self) -> bool:
        return not self.groups and not self.users


_APPROVAL_ONLY = (
    "approvers",
    "quorum",
    "timeout",
    "on_timeout",
    "escalation_group",
    "allow_requester",
)


class GateSpec(PlanModel):
    """The gate in front of a ring: ``none``, ``auto`` (after ``soak``) or ``approval``."""

    type: Literal["none", "auto", "approval"] = "none"
    soak: Duration = dt.timedelta(0)
    approvers: Approvers | None = None
    quorum: int = Field(default=1, ge=1)
    timeout: Duration = dt.timedelta(hours=24)
    on_timeout: Literal["reject", "escalate"] = "reject"
    escalation_group: UserGroupId | None = None
    allow_requester: bool = False

    @field_validator("soak")
    @classmethod
    def _soak_is_for_auto(cls, value: dt.timedelta, info: ValidationInfo) -> dt.timedelta:
        gate_type = info.data.get("type")
        if gate_type not in (None, "auto") and value != dt.timedelta(0):
            raise ValueError(f"soak applies to auto gates, not to a {gate_type!r} gate")
        return value

    @field_validator(*_APPROVAL_ONLY)
    @classmethod
    def _approval_only(cls, value: Any, info: ValidationInfo) -> Any:
        gate_type = info.data.get("type")
        default = cls.model_fields[info.field_name or ""].default
        if gate_type not in (None, "approval") and value != default:
            raise ValueError(
                f"{info.field_name} applies to approval gates, not to a {gate_type!r} gate"
            )
        return value

    @field_validator("approvers")
    @classmethod
    def _someone(cls, value: Approvers | None) -> Approvers | None:
        if value is not None and value.is_empty():
            raise ValueError("name at least one approver: groups: [S…] and/or users: [U…]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type != "approval":
            return self
        if self.approvers is None:
            raise At(
                (
                    ("approvers",),
                    "an approval gate needs approvers (groups: [S…] and/or users: [U…])",
                )
            )
        if self.on_timeout == "escalate" and self.escalation_group is None:
            raise At((("escalation_group",), "on_timeout: escalate needs an escalation_group (S…)"))
        if not self.approvers.groups and self.quorum > len(set(self.approvers.users)):
            raise At(
                (
                    ("quorum",),
                    f"quorum {self.quorum} can never be met: only "
                    f"{len(set(self.approvers.users))} approver(s) named and no group",
                )
            )
        return self


_RING_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def backend_name(value: str) -> str:
    """A backend's name as plans write it (``ssh``, ``ansible``, ``awx``)."""
    if not _BACKEND_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a backend name: up to 32 lower-case letters, digits, - and _, "
            "starting with a letter"
        )
    return value


class RingSpec(PlanModel):
    """One ring: which hosts (``hosts`` selector, optional ``sample``), how fast, how safe."""

    name: str
    hosts: SelectorField
    sample: AmountField | None = None
    batch: AmountField = Amount(percent=Decimal(25))
    failure_budget: AmountField = Amount(count=0)
    health_checks: list[HealthCheck] | None = None
    gate: GateSpec = GateSpec()
    # The backend that patches this ring's hosts (None: the plan's ``backend``); a host
    # may pick another through its inventory variable ``patchgate_backend``.
    backend: str | None = None

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str | None) -> str | None:
        return None if value is None else backend_name(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RING_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a ring name: lower-case letters, digits, - and _, "
                "starting with a letter or digit"
            )
        return value

    @field_validator("batch")
    @classmethod
    def _batch(cls, value: Amount) -> Amount:
        if value.count == 0:
            raise ValueError("a batch must hold at least 1 host")
        return value

    @field_validator("sample")
    @classmethod
    def _sample(cls, value: Amount | None) -> Amount | None:
        if value is not None and value.count == 0:
            raise ValueError("a sample must take at least 1 host (or leave sample out)")
        return value
