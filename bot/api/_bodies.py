"""The request bodies the API takes: small pydantic models, strict, nothing extra."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Text = Field(min_length=1, max_length=2000)
Name = Field(min_length=1, max_length=128)
When = Field(min_length=1, max_length=100)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Empty(Body):
    pass


class StartBody(Body):
    plan: str = Name


class ApproveBody(Body):
    hash: str = Field(min_length=1, max_length=64)


class RejectBody(Body):
    reason: str = Text


class ControlBody(Body):
    reason: str | None = Field(default=None, max_length=2000)


class RunBody(Body):
    plan: str = Name
    at: str = When


class FreezeBody(Body):
    reason: str = Text
    until: str | None = Field(default=None, min_length=1, max_length=100)


class ExceptionBody(Body):
    host: str = Field(min_length=1, max_length=255)
    owner: str = Field(min_length=1, max_length=32)
    reason: str = Text
    expires: str = When
    package: str | None = Field(default=None, max_length=255)
    cve: str | None = Field(default=None, max_length=32)
    plan: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=32)


class RevokeBody(Body):
    reason: str | None = Field(default=None, max_length=2000)


class EmergencyBody(Body):
    cve: str = Field(min_length=1, max_length=32)
    plan: str | None = Field(default=None, max_length=128)
