"""Settings: flat PATCHGATE_* environment variables (a .env file works too).

Validation errors name the environment variable, one line per problem. Each command
asks only for what it needs through :meth:`Settings.require`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from bot.backend_settings import BackendSettings
from bot.settings_jira import JiraVoteSettings
from bot.settings_zones import ZoneSettings
from workflows.audit import AuditKeys, KeyRequired
from workflows.db import DatabaseURLs, normalise_database_url
from workflows.errors import ConfigError

ENV_PREFIX = "PATCHGATE_"
_SLACK_ID = re.compile(r"^[USWGB][A-Z0-9]{2,}$")

# Platform variables (Heroku and its imitators) read when the PATCHGATE_ one is not set,
# so the Procfile's `release` and `web` processes use the database and port they are given.
PLATFORM_FALLBACKS = {"database_url": "DATABASE_URL", "port": "PORT"}


def _platform(field: str) -> AliasChoices:
    return AliasChoices(f"{ENV_PREFIX}{field}".lower(), PLATFORM_FALLBACKS[field].lower())


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


SEVERITIES = ("critical", "high", "medium", "low")


def parse_sla_days(value: str) -> dict[str, int]:
    """``critical=7,high=30`` -> {severity: days}; unknown severities and bad days refused."""
    days: dict[str, int] = {}
    for item in _split(value):
        name, _, number = (part.strip() for part in item.partition("="))
        if name.lower() not in SEVERITIES or not number.isdigit() or int(number) < 1:
            raise ValueError(
                f"{item!r} is not of the form severity=days "
                f"(severity one of {', '.join(SEVERITIES)}, days a whole number >= 1)"
            )
        days[name.lower()] = int(number)
    return days


# More fields: bot/settings_jira.py (Jira votes), bot/backend_settings.py (backends) and
# bot/settings_zones.py (zone workers).
class Settings(JiraVoteSettings, BackendSettings, ZoneSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    database_url: str = Field(
        default="sqlite:///patchgate.db", validation_alias=_platform("database_url")
    )
    plans_dir: Path = Path("plans")
    inventory: str = "inventory"
    # CSV inventories (CMDB exports): field=Column pairs, e.g. name=hostname,address=ip.
    inventory_csv_columns: str = ""
    # Offline advisory data: an OSV directory (DSA/DLA/USN records) and a CISA KEV JSON.
    advisories_osv_dir: Path | None = None
    advisories_kev_file: Path | None = None
    # Facts older than this (hours) make a host a coverage gap.
    facts_max_age_hours: float = Field(default=24, gt=0)
    # The leader's scheduled discovery (facts) and assessment of the whole inventory,
    # in seconds between runs; 0 turns one off (bot/refresh.py).
    discovery_interval: float = Field(default=3600, ge=0)
    assess_interval: float = Field(default=6 * 3600, ge=0)
    # Right before a rollout pins its patch set, its hosts are assessed again; hosts
    # that have not answered after this many seconds are coverage gaps of the pin.
    assessment_refresh_timeout: float = Field(default=300, gt=0)
    # An engine step that fails this many times in a row on one host (or rollout) is
    # given up: the host (or ring and rollout) fails, on-call is alerted, a ticket filed.
    engine_step_retries: int = Field(default=5, ge=1)
    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535, validation_alias=_platform("port"))
    # When set, /healthz and /metrics are served on this port only (not on the Slack port).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Seconds between the background refreshes of what /metrics answers.
    metrics_interval: float = Field(default=15, gt=0)
    timezone: str = "UTC"
    # An iCalendar (.ics) file of blackout events (recurring ones too): no window opens
    # while one is on. Read wherever windows are computed (the leader, `schedule windows`).
    blackout_calendar: Path | None = None

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    oncall_channel: str | None = None
    oncall_group: str | None = None
    operators: str = ""
    admins: str = ""
    # The CLI's decisions go to serve's HTTP API (/api/v1) as the Slack user a personal
    # token (`patchgate token create`) acts as; the server applies its own settings.
    server_url: str | None = None
    token: SecretStr | None = None

    jira_url: str | None = None
    jira_user: str | None = None
    jira_token: SecretStr | None = None
    jira_project: str | None = None
    jira_issue_type: str = "Task"
    jira_done_transition: str = "Done"
    # Ticket severity -> Jira priority name; a severity not listed sets no priority.
    jira_priorities: str = "critical=Highest,high=High,medium=Medium,low=Low"
    # The host's risk score (0-100, its latest assessment) refines a ticket's priority:
    # each threshold it reaches raises the severity one level (low < medium < high <
    # critical) before the mapping above. Empty: the risk score is not used.
    jira_risk_thresholds: str = "70,90"
    jira_timeout: float = Field(default=10, gt=0)  # seconds per Jira HTTP call
    # Jira Cloud's search is eventually consistent: before re-creating a ticket whose
    # earlier attempt may have landed, search again after this many seconds.
    jira_search_settle: float = Field(default=5, ge=0)
    exception_max_days: int = Field(default=30, ge=1, le=366)
    # Evidence bundles: days allowed from a fix's availability to the host running it, per
    # severity (the share within SLA), and where `/patch report` keeps the bundles it builds.
    sla_days: str = "critical=7,high=30,medium=90,low=180"
    report_dir: Path = Path("reports")
    exceptions_channel: str | None = None  # where lapsed exceptions are announced

    # The audit key: HMAC-SHA256 over every appended event, the head and prune
    # checkpoints (at least 32 characters). Or a file holding it; unset on SQLite, a file
    # beside the database, generated (0600) at the first append. Retired keys (comma-
    # separated) still verify what they MAC'd. Then retention (`patchgate audit prune`):
    # where archives go, and how many days of events are always kept.
    audit_key: SecretStr | None = None
    audit_key_file: Path | None = None
    audit_old_keys: SecretStr | None = None
    # PostgreSQL without a key: serve and appending commands refuse, unless this opt-out.
    audit_unkeyed: bool = False
    audit_archive_dir: Path = Path("audit-archive")
    audit_min_retention_days: int = Field(default=90, ge=1)
    # Ed25519 private key (PEM, from `patchgate audit keygen`): signs evidence bundles
    # and witnessed audit heads. Witnessed heads go to this JSON Lines file (the operator
    # ships it elsewhere), every audit_witness_interval seconds and after a rollout ends.
    signing_key: Path | None = None
    audit_witness_file: Path | None = None
    audit_witness_interval: float = Field(default=3600, gt=0)

    leader_takeover: float = Field(default=30, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # How often the leader's engine loop looks for work (seconds).
    engine_tick: float = Field(default=2.0, gt=0)
    # Which executor the engine drives: the SSH executor, or the recording fake
    # (tests and demos). The recording fake keeps its hosts' state in a JSON file.
    executor: Literal["ssh", "recording"] = "ssh"
    recording_state_file: Path | None = None
    # Test-only: seconds each recording-executor apply takes (work in flight to kill).
    recording_apply_delay: float = Field(default=0, ge=0)
    # Test-only: a file holding an ISO timestamp that the clock reads as "now".
    test_clock_file: Path | None = None
    # Test-only (the crash harness, tests/e2e/crash.py): STEP[:N] makes `serve` SIGKILL
    # itself right after the engine's N-th (default 1st) persisted step of that name;
    # a file to which `serve` appends the name of every persisted step.
    test_kill_at: str | None = Field(default=None, pattern=r"^[a-z_.]+(:[1-9][0-9]*)?$")
    test_step_log: Path | None = None
    # SIGTERM: seconds `serve` waits for in-flight work (a batch's host commands, an
    # outbox delivery) before cancelling it and exiting.
    shutdown_grace: float = Field(default=30, gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        normalise_database_url(value)  # raises ValueError with a clear message
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("blackout_calendar")
    @classmethod
    def _calendar(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().is_file():
            raise ValueError(f"{value}: no such file (an iCalendar .ics file of blackouts)")
        return value.expanduser() if value is not None else None

    @field_validator("audit_key", mode="before")
    @classmethod
    def _audit_key(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None  # set but empty: no key
        if isinstance(text, str) and len(text.strip()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("audit_old_keys", mode="before")
    @classmethod
    def _audit_old_keys(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        if isinstance(text, str) and any(len(k) < 32 for k in _split(text)):
            raise ValueError("each key must be at least 32 characters")
        return value

    @property
    def audit_key_missing(self) -> bool:
        """PostgreSQL, no audit key, no opt-out: serve and appending commands refuse."""
        return self.audit_keys is None and not self.audit_unkeyed

    @property
    def audit_keys(self) -> AuditKeys | None:
        """The keys the chain is MAC'd and verified with (None: unkeyed, PostgreSQL with
        neither PATCHGATE_AUDIT_KEY nor PATCHGATE_AUDIT_KEY_FILE)."""
        old = (
            []
            if self.audit_old_keys is None
            else [k.encode("utf-8") for k in _split(self.audit_old_keys.get_secret_value())]
        )
        if self.audit_key is not None:
            key = self.audit_key.get_secret_value().encode("utf-8")
            return AuditKeys(key=key, old_keys=old)
        if self.audit_key_file is not None:
            return AuditKeys(key_file=self.audit_key_file.expanduser(), old_keys=old)
        path = normalise_database_url(self.database_url).sqlite_path
        if path is None:
            return None
        return AuditKeys(key_file=Path(path + ".audit-key"), old_keys=old)

    @field_validator("operators", "admins")
    @classmethod
    def _ids(cls, value: str) -> str:
        for item in _split(value):
            if not _SLACK_ID.fullmatch(item):
                raise ValueError(f"{item!r} is not a Slack user or group ID (U…, W…, S…)")
        return value

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError(f"{value!r} is not an http:// or https:// URL of patchgate serve")
        return value.strip().rstrip("/")

    @field_validator("token", mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None  # set but empty: no token
        return value

    @field_validator("inventory_csv_columns")
    @classmethod
    def _csv_columns(cls, value: str) -> str:
        from integrations.inventory.csv_inventory import parse_mapping

        parse_mapping(value)  # raises ValueError naming the bad pair
        return value

    @property
    def csv_column_map(self) -> dict[str, str]:
        from integrations.inventory.csv_inventory import parse_mapping

        return parse_mapping(self.inventory_csv_columns)

    @field_validator("jira_priorities")
    @classmethod
    def _priorities(cls, value: str) -> str:
        for item in _split(value):
            if "=" not in item or not all(part.strip() for part in item.split("=", 1)):
                raise ValueError(f"{item!r} is not of the form severity=Priority")
        return value

    @field_validator("sla_days")
    @classmethod
    def _sla_days(cls, value: str) -> str:
        parse_sla_days(value)  # raises ValueError naming the bad pair
        return value

    @property
    def sla_day_map(self) -> dict[str, int]:
        return parse_sla_days(self.sla_days)

    @property
    def jira_priority_map(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in _split(self.jira_priorities))
        return {sev.strip().lower(): prio.strip() for sev, prio in pairs}

    @field_validator("jira_risk_thresholds")
    @classmethod
    def _risk_thresholds(cls, value: str) -> str:
        for item in _split(value):
            if not item.isdigit() or not 1 <= int(item) <= 100:
                raise ValueError(
                    f"{item!r} is not a risk score threshold (a whole number from 1 to 100)"
                )
        return value

    @property
    def jira_risk_threshold_list(self) -> tuple[int, ...]:
        return tuple(sorted(int(item) for item in _split(self.jira_risk_thresholds)))

    @property
    def database(self) -> DatabaseURLs:
        """The URLs, carrying the audit keys every session appends with."""
        urls = normalise_database_url(self.database_url)
        keys = KeyRequired() if self.audit_key_missing else self.audit_keys
        return dataclasses.replace(urls, audit_keys=keys)

    @property
    def operator_ids(self) -> frozenset[str]:
        return frozenset(_split(self.operators))

    @property
    def admin_ids(self) -> frozenset[str]:
        return frozenset(_split(self.admins))

    @property
    def checked_plans_dir(self) -> Path:
        """The plans directory, or a settings error naming PATCHGATE_PLANS_DIR (exit 2)."""
        if not self.plans_dir.is_dir():
            raise ConfigError([f"{ENV_PREFIX}PLANS_DIR: {self.plans_dir} is not a directory"])
        return self.plans_dir

    @property
    def inventory_sources(self) -> list[Path]:
        """The file and directory sources (``backend:…`` entries are not files)."""
        return [
            Path(p).expanduser() for p in _split(self.inventory) if not p.startswith("backend:")
        ]

    @property
    def inventory_backend_entries(self) -> list[str]:
        """The ``backend:NAME[:OPTIONS.yml]`` entries: hosts imported from a backend."""
        return [p for p in _split(self.inventory) if p.startswith("backend:")]

    @property
    def checked_inventory_sources(self) -> list[Path]:
        """The inventory sources, or a settings error naming PATCHGATE_INVENTORY (exit 2)
        for each one that does not exist."""
        sources = self.inventory_sources
        missing = [
            f"{ENV_PREFIX}INVENTORY: {path}: no such file or directory"
            for path in sources
            if not path.exists()
        ]
        if missing or not (sources or self.inventory_backend_entries):
            raise ConfigError(missing or [f"{ENV_PREFIX}INVENTORY: no inventory source given"])
        return sources

    def require(self, *names: str) -> None:
        """Fail with one line per missing setting, naming its environment variable."""
        missing = [
            f"{ENV_PREFIX}{name.upper()}: required for this command"
            for name in names
            if getattr(self, name) in (None, "")
        ]
        if missing:
            raise ConfigError(missing)


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning pydantic's errors into one line per environment variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]).upper() if err["loc"] else "?"
            message = str(err["msg"])
            message = message.removeprefix("Value error, ")
            if not field.startswith(ENV_PREFIX) and field not in PLATFORM_FALLBACKS.values():
                field = f"{ENV_PREFIX}{field}"
            problems.append(f"{field}: {message}")
        raise ConfigError(problems) from None
