"""What the hosts' advisory listings have in common: severity words, publication times,
and the builder that merges an advisory from several listings (dnf and zypper both name
an advisory's packages, CVEs and dates in separate outputs)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from integrations.packages import rpm
from workflows.ports import HostAdvisory

_SEVERITIES = {
    "critical": "critical",
    "important": "high",
    "high": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
}


def severity_word(value: object) -> str | None:
    """A vendor severity as PatchGate's word (Important -> high); None if unknown."""
    if not isinstance(value, str):
        return None
    return _SEVERITIES.get(value.strip().lower())


def published_at(value: object) -> dt.datetime | None:
    """UNIX seconds, or ``YYYY-MM-DD[ HH:MM[:SS]]`` (UTC), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC) if value > 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return published_at(int(text))
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"):
            try:
                return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
    return None


@dataclass
class AdvisoryBuilder:
    """An advisory being put together from several listings."""

    id: str
    packages: dict[str, str | None] = field(default_factory=dict)
    cves: set[str] = field(default_factory=set)
    severity: str | None = None
    published: dt.datetime | None = None

    def add_nevra(self, nevra: str) -> None:
        name, evr, arch = rpm.split_nevra(nevra)
        if not name or arch in ("src", "nosrc"):
            return
        self.packages[name] = evr
        if arch == "i686":
            self.packages[f"{name}.i686"] = evr

    def merge(self, *, severity: object = None, published: object = None) -> None:
        self.severity = self.severity or severity_word(severity)
        self.published = self.published or published_at(published)

    def build(self) -> HostAdvisory:
        return HostAdvisory(
            id=self.id,
            packages=dict(sorted(self.packages.items())),
            cves=tuple(sorted(c.upper() for c in self.cves)),
            severity=self.severity,
            published=self.published,
        )


class Advisories(dict[str, AdvisoryBuilder]):
    def get_or_add(self, ident: str) -> AdvisoryBuilder:
        if ident not in self:
            self[ident] = AdvisoryBuilder(ident)
        return self[ident]

    def built(self) -> list[HostAdvisory]:
        return [self[k].build() for k in sorted(self)]
