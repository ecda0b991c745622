"""PatchPlan, and its plan-wide parts: the schedule and blackouts, which packages to install,
the rollback policy, where to report (Slack, Jira), and the emergency profile.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, Field, field_validator, model_validator

from workflows.plans._fields import (
    Amount,
    AmountField,
    At,
    ChannelId,
    Duration,
    PlanModel,
)
from workflows.plans._rings import Approvers, HealthCheck, RingSpec, backend_name

_PLAN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Schedule(PlanModel):
    """When the patch window opens (``cron`` in ``timezone``) and how long it lasts."""

    cron: str
    timezone: str = "UTC"
    duration: Duration
    # A batch starts only if at least this much of the window is left (also: a window
    # found open at start-up is used only if this much is left; else it is "missed").
    min_time_for_batch: Duration = dt.timedelta(minutes=15)
    # When the window ends mid-rollout: wait for the next window, or abort.
    on_window_end: Literal["wait", "abort"] = "wait"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        fields = value.split()
        if len(fields) != 5:
            raise ValueError(
                f"a cron expression has 5 fields (minute hour day month weekday), got {len(fields)}"
            )
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression")
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/London)"
            ) from None
        return value

    @field_validator("duration")
    @classmethod
    def _positive(cls, value: dt.timedelta) -> dt.timedelta:
        if value <= dt.timedelta(0):
            raise ValueError("a window must last longer than 0s")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Blackout(PlanModel):
    """A period in which no window opens (a freeze for a release, an audit...)."""

    start: AwareDatetime
    end: AwareDatetime
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise At((("end",), "must be after start"))
        return self


_SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
# Vendor words for the same levels (Red Hat, Debian/Ubuntu, SUSE).
_SEVERITY_ALIASES = {
    "negligible": "low",
    "unimportant": "low",
    "moderate": "medium",
    "important": "high",
}


def severity_rank(severity: str | None) -> int:
    """0 for unknown, 1 low ... 4 critical; vendor words are mapped (important -> high)."""
    if severity is None:
        return 0
    word = severity.strip().lower()
    return _SEVERITY_RANK.get(_SEVERITY_ALIASES.get(word, word), 0)


class PackageSelection(PlanModel):
    """Which upgradable packages a rollout installs."""

    security_only: bool = False
    min_severity: Literal["low", "medium", "high", "critical"] | None = None
    include: list[str] = ["*"]
    exclude: list[str] = []
    holds: list[str] = []
    # Install a fix only once its advisory is this many days old (None: at once).
    approve_after_days: int | None = Field(default=None, ge=0)

    @field_validator("include", "exclude", "holds")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip():
                raise ValueError("an empty package pattern matches nothing; remove it")
        return value

    def selects(self, name: str, *, security: bool, severity: str | None) -> bool:
        if self.security_only and not security:
            return False
        if (
            self.min_severity is not None
            and severity_rank(severity) < _SEVERITY_RANK[self.min_severity]
        ):
            return False
        if any(fnmatchcase(name, p) for p in self.holds):
            return False
        if any(fnmatchcase(name, p) for p in self.exclude):
            return False
        return any(fnmatchcase(name, p) for p in self.include)


class RollbackPolicy(PlanModel):
    on_patch_failure: bool = True
    on_health_failure: bool = True
    # Roll back every patched host of the ring when its failure budget is exceeded.
    ring_on_budget_exceeded: bool = True
    on_abort: bool = False
    # Patch a host only once its installed versions' packages are kept on it (rollback
    # material). False (or ``rollback: none``) patches it without them, and says so.
    require_material: bool = True


class SlackTarget(PlanModel):
    channel: ChannelId


class JiraTarget(PlanModel):
    project: str | None = None
    issue_type: str | None = None
    ticket_on_reject: bool = False  # a rejected or expired gate opens a ticket too
    max_exception_days: int | None = Field(default=None, ge=1, le=366)


# --- issue 23: a Jira change ticket per rollout (opt-in) ---------------------------------
class ChangeSpec(PlanModel):
    """``change:``: a Jira change ticket for each rollout of the plan, on which approvers
    may also vote (docs/jira.md)."""

    ticket: bool = True
    project: str | None = None  # default: jira.project, then PATCHGATE_JIRA_PROJECT
    issue_type: str | None = None  # default: PATCHGATE_JIRA_CHANGE_ISSUE_TYPE


class EmergencyProfile(PlanModel):
    """How ``patchgate emergency`` runs this plan: faster batches, its own approvers."""

    batch: AmountField = Amount(percent=Decimal(50))
    failure_budget: AmountField | None = None
    approvers: Approvers | None = None
    quorum: int = Field(default=1, ge=1)
    skip_rings: list[str] = []
    gate_timeout: Duration | None = None  # replaces approval gates' timeout (shorter)

    @field_validator("batch")
    @classmethod
    def _batch(cls, value: Amount) -> Amount:
        if value.count == 0:
            raise ValueError("a batch must hold at least 1 host")
        return value


class PatchPlan(PlanModel):
    name: str
    description: str = ""
    schedule: Schedule | None = None
    blackouts: list[Blackout] = []
    packages: PackageSelection = PackageSelection()
    reboot: Literal["never", "if-required", "always"] = "if-required"
    rollback: RollbackPolicy = RollbackPolicy()
    health_checks: list[HealthCheck] = []
    rings: list[RingSpec] = Field(min_length=1)
    slack: SlackTarget | None = None
    jira: JiraTarget | None = None
    change: ChangeSpec | None = None  # issue 23
    emergency: EmergencyProfile | None = None
    lease_conflict: Literal["wait", "skip"] = "wait"
    # Who patches the hosts (issue 19): the plan's default backend, and each backend's
    # options (free-form; the backend checks them when the plan is loaded).
    backend: str = "ssh"
    backends: dict[str, dict[str, Any]] = {}

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        return backend_name(value)

    @field_validator("backends")
    @classmethod
    def _backends(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name in value:
            try:
                backend_name(name)
            except ValueError as exc:
                problems.append(((name,), str(exc)))
        if problems:
            raise At(*problems)
        return value

    @field_validator("rollback", mode="before")
    @classmethod
    def _rollback_none(cls, value: object) -> object:
        """``rollback: none``: never roll back, and patch without rollback material."""
        if value == "none":
            return {
                "on_patch_failure": False,
                "on_health_failure": False,
                "ring_on_budget_exceeded": False,
                "on_abort": False,
                "require_material": False,
            }
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _PLAN_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a plan name: up to 63 lower-case letters, digits, - and _, "
                "starting with a letter or digit"
            )
        return value

    @field_validator("rings")
    @classmethod
    def _unique_rings(cls, rings: list[RingSpec]) -> list[RingSpec]:
        first: dict[str, int] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for index, ring in enumerate(rings):
            if ring.name in first:
                problems.append(
                    (
                        (index, "name"),
                        f"ring name {ring.name!r} is already used by rings[{first[ring.name]}]",
                    )
                )
            else:
                first[ring.name] = index
        if problems:
            raise At(*problems)
        return rings

    @model_validator(mode="after")
    def _emergency_rings(self) -> Self:
        if self.emergency is None:
            return self
        names = {ring.name for ring in self.rings}
        problems: list[tuple[tuple[str | int, ...], str]] = [
            (("emergency", "skip_rings", i), f"{name!r} is not a ring of this plan")
            for i, name in enumerate(self.emergency.skip_rings)
            if name not in names
        ]
        if problems:
            raise At(*problems)
        return self

    def ring(self, name: str) -> RingSpec:
        for ring in self.rings:
            if ring.name == name:
                return ring
        raise KeyError(name)

    def backend_for(self, ring: RingSpec | str) -> str:
        """The ring's backend (its own, else the plan's)."""
        spec = self.ring(ring) if isinstance(ring, str) else ring
        return spec.backend or self.backend

    def backend_options(self, name: str) -> dict[str, Any]:
        """The plan's options for a backend (``backends.<name>``; empty if none)."""
        return dict(self.backends.get(name, {}))

    def configured_backends(self) -> set[str]:
        """Every backend this plan may use: its own, its rings', those it configures."""
        return {self.backend, *(r.backend for r in self.rings if r.backend), *self.backends}

    def checks_for(self, ring: RingSpec | str) -> list[HealthCheck]:
        """The ring's own health checks if it names any (even an empty list), else the plan's."""
        spec = self.ring(ring) if isinstance(ring, str) else ring
        return list(spec.health_checks if spec.health_checks is not None else self.health_checks)
