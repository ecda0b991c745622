"""PatchPlan: what to patch, where, in which rings, behind which gates; loaded from YAML.

Every model forbids unknown fields, so a typo is an error rather than a silently
ignored setting. :func:`load_plan` reads a file with ruamel.yaml's round-trip loader
(which keeps line numbers) and turns *every* validation error into one located line::

    plans/weekly.yml:14 rings[2].batch: expected a count or a percentage like "25%"

:func:`load_plans` loads a directory, collecting the errors of all files and refusing
two files that declare the same plan ``name:``.

A validated plan dumps to JSON (``plan.model_dump(mode="json")``) and validates back
to an equal plan; :func:`plan_hash` is the SHA-256 of that canonical JSON.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from workflows.errors import PlanError, SelectorError
from workflows.plans.selectors import Selector, parse_selector

__all__ = [
    "Amount",
    "Approvers",
    "Blackout",
    "Duration",
    "EmergencyProfile",
    "GateSpec",
    "HealthCheck",
    "JiraTarget",
    "LoadedPlan",
    "PackageSelection",
    "PatchPlan",
    "RingSpec",
    "RollbackPolicy",
    "Schedule",
    "SlackTarget",
    "format_duration",
    "load_plan",
    "load_plans",
    "parse_amount",
    "parse_duration",
    "plan_hash",
]

# --- amounts: a count or a percentage ----------------------------------------------------

_AMOUNT_HELP = 'expected a count or a percentage like "25%"'
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Amount:
    """A number of hosts, given as a count (``3``) or a percentage (``"25%"``).

    Exactly one of ``count`` and ``percent`` is set. Percentages use Decimal so that
    rounding is exact (10% of 30 is 3, never 3.0000000004 rounded up to 4).
    """

    count: int | None = None
    percent: Decimal | None = None

    @classmethod
    def of(cls, value: int | str) -> Amount:
        return parse_amount(value)

    def _exact(self, n: int) -> Decimal:
        assert self.percent is not None
        return Decimal(n) * self.percent / _HUNDRED

    def batch_of(self, n: int) -> int:
        """Batch size for a ring of ``n`` hosts: percent rounded up, at least 1, at most n."""
        ceiling = max(n, 1)
        if self.count is not None:
            return max(1, min(self.count, ceiling))
        size = int(self._exact(n).to_integral_value(rounding=ROUND_CEILING))
        return max(1, min(size, ceiling))

    def budget_of(self, n: int) -> int:
        """Failure budget for a ring of ``n`` hosts: percent rounded down; a count as is."""
        if self.count is not None:
            return self.count
        return int(self._exact(n).to_integral_value(rounding=ROUND_FLOOR))

    def sample_of(self, n: int) -> int:
        """Sample out of ``n`` candidates: percent rounded up, at least 1 if n > 0, at most n."""
        if n <= 0:
            return 0
        if self.count is not None:
            return min(self.count, n)
        size = int(self._exact(n).to_integral_value(rounding=ROUND_CEILING))
        return max(1, min(size, n))

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        assert self.percent is not None
        return f"{self.percent.normalize():f}%"

    def to_json(self) -> int | str:
        return self.count if self.count is not None else str(self)


def parse_amount(value: object) -> Amount:
    """``3`` -> count 3; ``"25%"`` -> 25 percent. Raises ValueError with a readable message."""
    if isinstance(value, Amount):
        return value
    if isinstance(value, bool):
        raise ValueError(_AMOUNT_HELP)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count must be 0 or more, got {value}")
        return Amount(count=value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return Amount(count=int(text))
        match = _PERCENT.match(text)
        if match:
            try:
                percent = Decimal(match.group(1))
            except InvalidOperation:  # pragma: no cover - the regex admits only decimals
                raise ValueError(_AMOUNT_HELP) from None
            if not 0 < percent <= _HUNDRED:
                raise ValueError(
                    f"a percentage must be more than 0% and at most 100%, got {value!r}"
                )
            return Amount(percent=percent)
    raise ValueError(_AMOUNT_HELP)


AmountField = Annotated[
    Amount,
    PlainValidator(parse_amount),
    PlainSerializer(Amount.to_json),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
]

# --- durations ---------------------------------------------------------------------------

_DURATION_HELP = 'expected a duration like "90s", "30m", "4h", "2d" or "1h30m"'
_DURATION = re.compile(
    r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$", re.IGNORECASE
)


def parse_duration(value: object) -> dt.timedelta:
    """``"90s"``, ``"30m"``, ``"4h"``, ``"2d"``, ``"1h30m"`` or an int of seconds."""
    if isinstance(value, dt.timedelta):
        if value < dt.timedelta(0):
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, bool):
        raise ValueError(_DURATION_HELP)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.isdigit():
            return dt.timedelta(seconds=int(text))
        match = _DURATION.match(text)
        if text and match:
            parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
            return dt.timedelta(
                days=parts.get("d", 0),
                hours=parts.get("h", 0),
                minutes=parts.get("m", 0),
                seconds=parts.get("s", 0),
            )
    raise ValueError(_DURATION_HELP)


def format_duration(value: dt.timedelta) -> str:
    """The canonical text of a duration: ``"1h30m"``, ``"2d"``, ``"0s"``."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return "".join(
        f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n
    )


Duration = Annotated[
    dt.timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": ["string", "integer"]}),
]

# --- selectors ---------------------------------------------------------------------------


def _selector(value: object) -> Selector:
    if isinstance(value, Selector):
        return value
    if not isinstance(value, str):
        raise ValueError('expected a host selector string like "group:prod and not tag:pci"')
    try:
        return parse_selector(value)
    except SelectorError as exc:
        raise ValueError(f"bad selector: {exc}") from None


SelectorField = Annotated[
    Selector,
    PlainValidator(_selector),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]

# systemd unit names for health checks (never option-like on systemctl's command line)
_UNIT = re.compile(r"[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]{0,255}")

# --- Slack IDs ---------------------------------------------------------------------------

_USER_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")


def _slack_id(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a {what}")
        return value

    return PlainValidator(check, json_schema_input_type=str)


UserGroupId = Annotated[str, _slack_id(_USER_GROUP_ID, "Slack user-group ID (S…)")]
UserId = Annotated[str, _slack_id(_USER_ID, "Slack user ID (U… or W…)")]
ChannelId = Annotated[str, _slack_id(_CHANNEL_ID, "Slack channel ID (C… or G…)")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- health checks -----------------------------------------------------------------------

CheckType = Literal["http", "tcp", "command", "systemd"]
_CHECK_FIELDS: dict[str, CheckType] = {
    "url": "http",
    "expect_status": "http",
    "expect_body": "http",
    "port": "tcp",
    "argv": "command",
    "unit": "systemd",
}
_CHECK_REQUIRED: dict[CheckType, str] = {
    "http": "url",
    "tcp": "port",
    "command": "argv",
    "systemd": "unit",
}


class HealthCheck(_Model):
    """One check run against each host after it is patched (and rebooted).

    ``url`` may contain ``{host}`` (inventory name) and ``{address}`` (connect address).
    ``argv`` is a list run without a shell.
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
        if getattr(self, needed) is None:
            raise ValueError(f"a {self.type} check needs {needed!r}")
        return self


# --- gates -------------------------------------------------------------------------------


class Approvers(_Model):
    """Who may decide a gate: Slack user groups and/or users, by ID."""

    groups: list[UserGroupId] = []
    users: list[UserId] = []

    def is_empty(self) -> bool:
        return not self.groups and not self.users


class _At(ValueError):
    """A validation error that belongs to fields below the model that raised it.

    Model-level rules (duplicate ring names, ``end`` before ``start``) are checked
    after the fields, so pydantic locates their errors at the model. ``_At`` carries
    the field path(s) relative to that model, and the loader puts the line there.
    """

    def __init__(self, *items: tuple[tuple[str | int, ...], str]) -> None:
        self.items = list(items)
        super().__init__("; ".join(f"{_render_path(path)}: {msg}" for path, msg in items))


_APPROVAL_ONLY = (
    "approvers",
    "quorum",
    "timeout",
    "on_timeout",
    "escalation_group",
    "allow_requester",
)


class GateSpec(_Model):
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
            raise _At(
                (
                    ("approvers",),
                    "an approval gate needs approvers (groups: [S…] and/or users: [U…])",
                )
            )
        if self.on_timeout == "escalate" and self.escalation_group is None:
            raise _At(
                (("escalation_group",), "on_timeout: escalate needs an escalation_group (S…)")
            )
        if not self.approvers.groups and self.quorum > len(set(self.approvers.users)):
            raise _At(
                (
                    ("quorum",),
                    f"quorum {self.quorum} can never be met: only "
                    f"{len(set(self.approvers.users))} approver(s) named and no group",
                )
            )
        return self


# --- rings -------------------------------------------------------------------------------

_RING_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PLAN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class RingSpec(_Model):
    """One ring: which hosts (``hosts`` selector, optional ``sample``), how fast, how safe."""

    name: str
    hosts: SelectorField
    sample: AmountField | None = None
    batch: AmountField = Amount(percent=Decimal(25))
    failure_budget: AmountField = Amount(count=0)
    health_checks: list[HealthCheck] | None = None
    gate: GateSpec = GateSpec()

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


# --- schedule and blackouts --------------------------------------------------------------


class Schedule(_Model):
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


class Blackout(_Model):
    """A period in which no window opens (a freeze for a release, an audit...)."""

    start: AwareDatetime
    end: AwareDatetime
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise _At((("end",), "must be after start"))
        return self


# --- packages, rollback, targets ---------------------------------------------------------

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


class PackageSelection(_Model):
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


class RollbackPolicy(_Model):
    on_patch_failure: bool = True
    on_health_failure: bool = True
    # Roll back every patched host of the ring when its failure budget is exceeded.
    ring_on_budget_exceeded: bool = True
    on_abort: bool = False
    # Patch a host only once its installed versions' packages are kept on it (rollback
    # material). False (or ``rollback: none``) patches it without them, and says so.
    require_material: bool = True


class SlackTarget(_Model):
    channel: ChannelId


class JiraTarget(_Model):
    project: str | None = None
    issue_type: str | None = None
    ticket_on_reject: bool = False  # a rejected or expired gate opens a ticket too
    max_exception_days: int | None = Field(default=None, ge=1, le=366)


class EmergencyProfile(_Model):
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


# --- the plan ----------------------------------------------------------------------------


class PatchPlan(_Model):
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
    emergency: EmergencyProfile | None = None
    lease_conflict: Literal["wait", "skip"] = "wait"

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
            raise _At(*problems)
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
            raise _At(*problems)
        return self

    def ring(self, name: str) -> RingSpec:
        for ring in self.rings:
            if ring.name == name:
                return ring
        raise KeyError(name)

    def checks_for(self, ring: RingSpec | str) -> list[HealthCheck]:
        """The ring's own health checks if it names any (even an empty list), else the plan's."""
        spec = self.ring(ring) if isinstance(ring, str) else ring
        return list(spec.health_checks if spec.health_checks is not None else self.health_checks)


def plan_json(plan: PatchPlan) -> str:
    """Canonical JSON of a plan: sorted keys, no spaces. What is stored and hashed."""
    return json.dumps(plan.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def plan_hash(plan: PatchPlan) -> str:
    """SHA-256 (hex) of the plan's canonical JSON."""
    return hashlib.sha256(plan_json(plan).encode()).hexdigest()


# --- loading with located errors ---------------------------------------------------------


@dataclass(frozen=True)
class LoadedPlan:
    path: Path
    plan: PatchPlan
    hash: str


def _render_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_of(tree: Any, loc: Sequence[str | int]) -> int:
    """1-based line of the deepest node of ``loc`` present in the ruamel tree."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    node = tree
    line = getattr(getattr(tree, "lc", None), "line", 0) or 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0]
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0]
            node = node[part]
        else:
            break
    return int(line) + 1


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class whose fields ``loc`` (a path to a field) is one of."""
    model: type[BaseModel] = PatchPlan
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        candidates = [info.annotation, *typing.get_args(info.annotation)]
        for arg in list(candidates):
            candidates.extend(typing.get_args(arg))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        model = _model_at(loc)
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "check the spelling"
        return f"unknown field ({hint})"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "timezone_aware":
        return "needs a UTC offset, like 2030-01-02T00:00:00+00:00"
    msg = str(error["msg"])
    if kind in ("literal_error", "enum"):
        return msg.replace("Input should be", "expected", 1) + f", got {error['input']!r}"
    return msg


def _errors(exc: ValidationError) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if error["type"] == "value_error" and isinstance(cause, _At):
            for rel, msg in cause.items:
                yield loc + rel, msg
        else:
            yield loc, _message(error)


def _plain(node: Any) -> Any:
    """ruamel's CommentedMap/CommentedSeq/ScalarFloat/TimeStamp... as plain Python."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.datetime):
        return dt.datetime(
            node.year, node.month, node.day, node.hour, node.minute, node.second,
            node.microsecond, tzinfo=node.tzinfo, fold=node.fold,
        )  # fmt: skip
    if isinstance(node, dt.date):
        return dt.date(node.year, node.month, node.day)
    return node


def _read(path: Path) -> tuple[Any, list[str]]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read: {exc}"]
    try:
        return YAML(typ="rt").load(text), []
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return None, [f"{path}:{line}: invalid YAML: {problem}"]
    except YAMLError as exc:
        return None, [f"{path}:1: invalid YAML: {exc}"]


def _load(path: Path) -> tuple[PatchPlan | None, list[str], Any]:
    from ruamel.yaml.comments import CommentedMap

    tree, messages = _read(path)
    if messages:
        return None, messages, None
    if not isinstance(tree, CommentedMap):
        return None, [f"{path}:1: a plan file is a YAML mapping (name:, rings:, ...)"], None
    try:
        plan = PatchPlan.model_validate(_plain(tree))
    except ValidationError as exc:
        located = [
            (_line_of(tree, loc), f"{path}:{_line_of(tree, loc)} {_render_path(loc)}: {msg}")
            for loc, msg in _errors(exc)
        ]
        located.sort(key=lambda item: item[0])  # stable: same line keeps pydantic's order
        return None, [text for _, text in located], tree
    return plan, [], tree


def load_plan(path: Path) -> PatchPlan:
    """Load and validate one plan file; every problem is a located line in PlanError."""
    plan, messages, _ = _load(path)
    if plan is None:
        raise PlanError(messages)
    return plan


def load_plans(directory: Path) -> dict[str, LoadedPlan]:
    """Every plan in ``directory`` (*.yml, *.yaml) by its ``name:``; all errors at once."""
    if not directory.is_dir():
        raise PlanError([f"{directory}: not a directory of plans"])
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    plans: dict[str, LoadedPlan] = {}
    lines: dict[str, int] = {}
    messages: list[str] = []
    for path in files:
        plan, errors, tree = _load(path)
        messages.extend(errors)
        if plan is None:
            continue
        line = _line_of(tree, ("name",))
        if plan.name in plans:
            other = plans[plan.name].path
            messages.append(
                f"{path}:{line} name: plan name {plan.name!r} is already used by "
                f"{other}:{lines[plan.name]}"
            )
            continue
        plans[plan.name] = LoadedPlan(path=path, plan=plan, hash=plan_hash(plan))
        lines[plan.name] = line
    if messages:
        raise PlanError(messages)
    return plans
