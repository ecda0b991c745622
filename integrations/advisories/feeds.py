"""The configured offline feeds, loaded together."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from integrations.advisories.kev import load_kev
from integrations.advisories.osv import load_osv_dir
from workflows.assessment import AdvisoryRecord


@dataclass(frozen=True)
class AdvisoryFeed:
    records: list[AdvisoryRecord] = field(default_factory=list)
    known_exploited: dict[str, dt.date | None] = field(default_factory=dict)


def load_feed(*, osv_dir: Path | None, kev_file: Path | None) -> AdvisoryFeed:
    return AdvisoryFeed(
        records=load_osv_dir(osv_dir) if osv_dir else [],
        known_exploited=load_kev(kev_file) if kev_file else {},
    )
