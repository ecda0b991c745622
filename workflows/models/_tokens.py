"""Personal API tokens: what ``serve``'s HTTP API knows of the tokens it accepts.

Only a SHA-256 of each token is stored; the token itself is shown once, when it is issued.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base


class ApiToken(Base):
    """A personal token acting as one Slack user on ``serve``'s HTTP API."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        sa.CheckConstraint("length(secret_hash) = 64", name="secret_hash"),
        sa.CheckConstraint("expires_at > created_at", name="lifetime"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # the public part of the token (``pgt_<public_id>_<secret>``): names it in lists and audit
    public_id: Mapped[str] = mapped_column(sa.String(16), unique=True)
    user_id: Mapped[str] = mapped_column(sa.String(32))  # the Slack user it acts as
    label: Mapped[str | None] = mapped_column(sa.String(200))
    secret_hash: Mapped[str] = mapped_column(sa.String(64))  # SHA-256 hex of the whole token
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(sa.String(255))
    expires_at: Mapped[dt.datetime]
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(sa.String(255))
