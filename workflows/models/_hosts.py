"""What is known about hosts: inventory and facts, exceptions, SSH host keys, risk assessments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from workflows.models._base import Base, utcnow


class Host(Base):
    """A host as last seen: inventory attributes plus facts gathered over SSH."""

    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    address: Mapped[str | None] = mapped_column(sa.String(255))
    port: Mapped[int | None]
    groups: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    environment: Mapped[str | None] = mapped_column(sa.String(64))
    owner: Mapped[str | None] = mapped_column(sa.String(255))
    criticality: Mapped[str | None] = mapped_column(sa.String(16))
    internet_facing: Mapped[bool] = mapped_column(default=False)
    os_id: Mapped[str | None] = mapped_column(sa.String(64))
    os_version: Mapped[str | None] = mapped_column(sa.String(64))
    arch: Mapped[str | None] = mapped_column(sa.String(32))
    kernel: Mapped[str | None] = mapped_column(sa.String(128))
    package_manager: Mapped[str | None] = mapped_column(sa.String(16))
    # linux, windows, macos (None: facts from before issue 21, read as linux)
    os_family: Mapped[str | None] = mapped_column(sa.String(16))
    build: Mapped[str | None] = mapped_column(sa.String(64))  # Windows/macOS OS build
    boot_id: Mapped[str | None] = mapped_column(sa.String(64))
    reboot_required: Mapped[bool | None]
    reachable: Mapped[bool | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    facts_at: Mapped[dt.datetime | None]
    last_patched_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HostException(Base):
    """A time-boxed exception: the host is left out of rollouts until it expires."""

    __tablename__ = "exceptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    host_name: Mapped[str] = mapped_column(sa.String(255), index=True)
    package: Mapped[str | None] = mapped_column(sa.String(255))  # None: the whole host
    cve: Mapped[str | None] = mapped_column(sa.String(32))  # the advisory it is about, if any
    channel: Mapped[str | None] = mapped_column(sa.String(32))  # where its lapse is announced
    lapsed_at: Mapped[dt.datetime | None]  # set when its expiry was processed
    reason: Mapped[str] = mapped_column(sa.Text)
    owner: Mapped[str] = mapped_column(sa.String(64))
    created_by: Mapped[str] = mapped_column(sa.String(64))
    expires_at: Mapped[dt.datetime]
    ticket_key: Mapped[str | None] = mapped_column(sa.String(64))
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KnownHostKey(Base):
    """An SSH host key accepted at first contact (the inventory opted in for that host),
    shared by every replica; ``name`` is how known_hosts names it (``addr``/``[addr]:port``)."""

    __tablename__ = "known_host_keys"
    __table_args__ = (sa.UniqueConstraint("name", "key_type"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    key_type: Mapped[str] = mapped_column(sa.String(64))
    key_base64: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(128))
    accepted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Assessment(Base):
    """One fix a host needs, as last assessed (advisories, CVEs, risk and its reasons).

    A host's assessment is replaced as a whole; a row with an empty ``package`` records
    that the host was assessed at ``assessed_at`` and needed nothing.
    """

    __tablename__ = "assessments"
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), index=True)
    package: Mapped[str] = mapped_column(sa.String(255))
    current: Mapped[str | None] = mapped_column(sa.String(255))
    candidate: Mapped[str] = mapped_column(sa.String(255))
    advisories: Mapped[list[Any]] = mapped_column(default=list)
    cves: Mapped[list[Any]] = mapped_column(default=list)
    severity: Mapped[str | None] = mapped_column(sa.String(16))
    cvss: Mapped[float | None]
    known_exploited: Mapped[bool] = mapped_column(default=False)
    security: Mapped[bool] = mapped_column(default=False)
    published: Mapped[dt.datetime | None]
    risk: Mapped[int] = mapped_column(default=0)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    # A vendor update's identity (kind, KB, catalog id, title, classification); None for
    # a package (workflows.ports.PatchIdentity.to_json).
    identity: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    assessed_at: Mapped[dt.datetime]


class HostAssessment(Base):
    """When a host was risk-assessed and how many security fixes it needed (kept for the
    coverage figures of evidence bundles; ``assessments`` holds only the latest)."""

    __tablename__ = "host_assessments"
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), index=True)
    assessed_at: Mapped[dt.datetime] = mapped_column(index=True)
    fixes: Mapped[int] = mapped_column(default=0)


class FixDetection(Base):
    """A security fix a host needed, kept from the first assessment that found it.

    Time to patch starts at ``published`` (the advisory's publication) when known, else at
    ``first_detected_at``; it ends when a host run leaves the package at ``candidate`` or
    later. ``last_detected_at`` is the latest assessment that still listed it.
    ``reopened_at`` (ISO times): each time an assessment found it again after a healthy
    host run had changed the package (a host restored from an old backup, a downgrade).
    """

    __tablename__ = "fix_detections"
    __table_args__ = (
        sa.UniqueConstraint("host", "package", "candidate", name="uq_fix_detections_host_fix"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    package: Mapped[str] = mapped_column(sa.String(255))
    current: Mapped[str | None] = mapped_column(sa.String(255))
    candidate: Mapped[str] = mapped_column(sa.String(255))
    severity: Mapped[str | None] = mapped_column(sa.String(16))
    cvss: Mapped[float | None]
    published: Mapped[dt.datetime | None]
    advisories: Mapped[list[Any]] = mapped_column(default=list)
    cves: Mapped[list[Any]] = mapped_column(default=list)
    first_detected_at: Mapped[dt.datetime] = mapped_column(index=True)
    last_detected_at: Mapped[dt.datetime]
    reopened_at: Mapped[list[Any] | None]
