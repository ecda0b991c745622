"""Settings of the batch backends (issue 19), a base of :class:`bot.settings.Settings`.

Kept apart so the settings module stays small; the fields are ordinary ``PATCHGATE_*``
variables read with ``Settings``' configuration (prefix, ``.env`` file).
"""

from __future__ import annotations

import re

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

    @field_validator("awx_url")
    @classmethod
    def _awx_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
            raise ValueError(f"{value!r} is not an http:// or https:// URL of the AWX server")
        return value.strip().rstrip("/")

    @field_validator("awx_api_path")
    @classmethod
    def _awx_api_path(cls, value: str) -> str:
        if not re.fullmatch(r"/?[A-Za-z0-9_./-]*", value) or ".." in value:
            raise ValueError(f"{value!r} is not an API path like /api/v2/")
        return "/" + value.strip("/") + "/"

    @field_validator("awx_token", mode="before")
    @classmethod
    def _awx_token(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is None or (isinstance(text, str) and not text.strip()):
            return None  # set but empty: no token
        return value
