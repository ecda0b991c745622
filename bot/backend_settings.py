"""Settings of the backends (issues 19-21: ssh, ansible, awx, satellite, automox,
ninjaone), a base of :class:`bot.settings.Settings`.

Kept apart so the settings module stays small; the fields are ordinary ``PATCHGATE_*``
variables read with ``Settings``' configuration (prefix, ``.env`` file).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings


class BackendSettings(BaseSettings):
    # AWX / Ansible Automation Platform controller (the `awx` backend).
    awx_url: str | None = None  # https://awx.example.com
    awx_token: SecretStr | None = None  # a personal access token (OAuth2 / AAP token)
    awx_verify_tls: bool = True
    awx_api_path: str = "/api/v2/"  # AAP 2.5+ through its gateway: /api/controller/v2/
    awx_timeout: float = Field(default=30, gt=0)  # seconds per HTTP call
    awx_poll_interval: float = Field(default=5, gt=0)  # seconds between job status polls
    awx_max_attempts: int = Field(default=4, ge=1, le=10)  # per idempotent call

    # Automox console API (the `automox` backend, docs/automox.md).
    automox_api_key: SecretStr | None = None  # an Automox API key (Bearer)
    automox_org: int | None = Field(default=None, gt=0)  # the organization id (``o``)
    automox_url: str = "https://console.automox.com/api"
    automox_timeout: float = Field(default=30, gt=0)  # seconds per HTTP call
    automox_poll_interval: float = Field(default=30, gt=0)  # seconds between queue polls
    automox_max_attempts: int = Field(default=4, ge=1, le=10)  # per GET
    automox_journal_dir: Path = Path("automox-journal")  # job keys of queued commands
    # NinjaOne public API v2 (the `ninjaone` backend, docs/ninjaone.md): OAuth2 client
    # credentials of an "API Services" client app; the URL is the region's
    # (app., eu., ca., oc.ninjarmm.com, us2.ninjarmm.com).
    ninjaone_url: str = "https://app.ninjarmm.com"
    ninjaone_client_id: str | None = None  # the client app's id (not a secret)
    ninjaone_client_secret: SecretStr | None = None
    ninjaone_scope: str = "monitoring management"  # apply/scan need management
    ninjaone_timeout: float = Field(default=30, gt=0)  # seconds per HTTP call
    ninjaone_poll_interval: float = Field(default=30, gt=0)  # seconds between install reads
    ninjaone_max_attempts: int = Field(default=4, ge=1, le=10)  # per GET
    ninjaone_journal_dir: Path = Path("ninjaone-journal")  # job keys of the applies posted
    # Red Hat Satellite / Foreman + Katello (the `satellite` backend, docs/satellite.md).
    satellite_url: str | None = None  # https://satellite.example.com
    satellite_user: str | None = None
    satellite_password: SecretStr | None = None  # the user's password or personal access token
    satellite_verify_tls: bool = True
    satellite_ca_file: Path | None = None  # Satellite's CA (katello-server-ca.crt)
    satellite_timeout: float = Field(default=30, gt=0)  # seconds per HTTP call
    satellite_poll_interval: float = Field(default=10, gt=0)  # seconds between task polls
    satellite_max_attempts: int = Field(default=4, ge=1, le=10)  # per read
    # Microsoft Intune / Windows Update for Business deployment service through Microsoft
    # Graph (the `intune` backend, docs/intune.md): an app registration's client credentials.
    intune_tenant_id: str | None = None  # the Microsoft Entra tenant (GUID or domain)
    intune_client_id: str | None = None  # the app registration's application (client) id
    intune_client_secret: SecretStr | None = None  # its client secret
    intune_graph_url: str = "https://graph.microsoft.com"  # (an emulator's URL in tests)
    intune_login_url: str = "https://login.microsoftonline.com"
    intune_timeout: float = Field(default=30, gt=0)  # seconds per HTTP call
    intune_poll_interval: float = Field(default=60, gt=0)  # seconds between deployment polls
    intune_max_attempts: int = Field(default=4, ge=1, le=10)  # per GET
    intune_journal_dir: Path = Path("intune-journal")  # job keys of created deployments

    # Tanium (the `tanium` backend, docs/tanium.md): the server or Tanium Cloud URL and
    # an API token (sent in the ``session`` header, ``token-`` prefix included).
    tanium_url: str | None = None  # https://tanium.example.com
    tanium_token: SecretStr | None = None
    tanium_verify_tls: bool = True
    tanium_ca_file: Path | None = None  # the server's CA, if not a public one
    tanium_timeout: float = Field(default=60, gt=0)  # seconds per HTTP call (live questions)
    tanium_poll_interval: float = Field(default=60, gt=0)  # seconds between result reads
    tanium_max_attempts: int = Field(default=4, ge=1, le=10)  # per query / GET
    tanium_journal_dir: Path = Path("tanium-journal")  # job keys and deployment ids

    # The ssh backend (integrations/ssh, docs/ssh.md).
    ssh_known_hosts: Path = Path("~/.ssh/known_hosts")
    ssh_concurrency: int = Field(default=50, ge=1, le=1000)
    ssh_command_timeout: float = Field(default=1800, gt=0)
    ssh_kex: str = "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256"
    ssh_reboot_timeout: float = Field(default=600, gt=0)
    # The user's OpenSSH client config read for every host (HostName, User, Port,
    # IdentityFile, ProxyJump, Include, ...); "none" ignores it.
    ssh_config: str = "~/.ssh/config"

    # The ansible backend (integrations/backends/ansible, docs/ansible.md): where each
    # batch's run is kept for evidence, how long, and the secrets answered to its prompts.
    ansible_artifacts_dir: Path = Path("ansible-artifacts")
    ansible_artifacts_retention_days: int = Field(default=400, ge=1)
    ansible_forks: int = Field(default=50, ge=1, le=1000)
    ansible_timeout: int = Field(default=3600, gt=0)
    ansible_ssh_key: Path | None = None
    ansible_ssh_key_passphrase: SecretStr | None = None
    ansible_become_password: SecretStr | None = None

    @property
    def ssh_config_path(self) -> Path | None:
        """PATCHGATE_SSH_CONFIG as a path; None for "none" (no OpenSSH config read)."""
        value = self.ssh_config.strip()
        return None if value.lower() in ("none", "") else Path(value)

    @field_validator("awx_url", "satellite_url", "tanium_url")
    @classmethod
    def _tool_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError(f"{value!r} is not an http:// or https:// URL of the server")
        return value.strip().rstrip("/")

    @field_validator("intune_graph_url", "intune_login_url")
    @classmethod
    def _intune_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.strip().rstrip("/")

    @field_validator("intune_tenant_id", "intune_client_id")
    @classmethod
    def _intune_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,253}", value.strip()):
            raise ValueError(f"{value!r} is not a tenant or client id (a GUID or a domain)")
        return value.strip()

    @field_validator("automox_url")
    @classmethod
    def _automox_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError(f"{value!r} is not an http:// or https:// URL of the Automox API")
        return value.strip().rstrip("/")

    @field_validator("ninjaone_url")
    @classmethod
    def _ninjaone_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+/?", value.strip()):
            raise ValueError(f"{value!r} is not the http(s):// URL of a NinjaOne region")
        return value.strip().rstrip("/")

    @field_validator("ninjaone_scope")
    @classmethod
    def _ninjaone_scope(cls, value: str) -> str:
        words = value.split()
        if not words or any(w not in ("monitoring", "management", "control") for w in words):
            raise ValueError(f"{value!r}: NinjaOne scopes are monitoring, management, control")
        return " ".join(words)

    @field_validator("automox_api_key", "tanium_token", "intune_client_secret", mode="before")
    @classmethod
    def _automox_api_key(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None
        return value

    @field_validator("awx_api_path")
    @classmethod
    def _awx_api_path(cls, value: str) -> str:
        if not re.fullmatch(r"/?[A-Za-z0-9_./-]*", value) or ".." in value:
            raise ValueError(f"{value!r} is not an API path like /api/v2/")
        return "/" + value.strip("/") + "/"

    @field_validator("awx_token", "satellite_password", "ninjaone_client_secret", mode="before")
    @classmethod
    def _awx_token(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None  # set but empty: no token
        return value
