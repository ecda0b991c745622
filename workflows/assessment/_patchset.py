"""The pinned patch set: per platform, the exact package -> version map, and its hash.

Built at assessment from the package manager's simulation (so new dependencies are
included); a set that would remove packages is refused. The hash (SHA-256 over sorted
canonical JSON) is shown at every gate and bound to every approval.

What is simulated: with fresh stored assessments, the fixes the plan's baseline selects
(:func:`workflows.assessment.baseline_for`) at their assessed versions; without them, the
packages :func:`select_packages` takes from a host's upgradable list (see the engine's
``_pin``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workflows.errors import Conflict
from workflows.plans import PackageSelection
from workflows.ports import Simulation, UpgradablePackage


def patchset_hash(patchset: Mapping[str, Mapping[str, str]]) -> str:
    canonical = json.dumps(
        {p: dict(sorted(v.items())) for p, v in sorted(patchset.items())},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def select_packages(
    upgradable: Sequence[UpgradablePackage], selection: PackageSelection
) -> list[str]:
    """Names of the upgradable packages the plan's package selection takes."""
    return sorted(
        p.name for p in upgradable if selection.selects(p.name, security=p.security, severity=None)
    )


@dataclass(frozen=True)
class PlatformSet:
    platform: str
    packages: dict[str, str]


def pin(platform: str, simulation: Simulation) -> PlatformSet:
    """Turn a simulation into the pinned set for one platform; refuse removals."""
    if simulation.removes:
        raise Conflict(
            f"{platform}: the patch set would remove packages "
            f"({', '.join(sorted(simulation.removes))}); refused"
        )
    return PlatformSet(platform, dict(sorted(simulation.installs.items())))


def describe(patchset: Mapping[str, Mapping[str, str]], *, limit: int = 12) -> str:
    lines = []
    for platform, packages in sorted(patchset.items()):
        items = [f"{n}={v}" for n, v in sorted(packages.items())]
        shown = ", ".join(items[:limit]) + (
            f", … (+{len(items) - limit})" if len(items) > limit else ""
        )
        lines.append(f"{platform}: {shown or 'nothing to install'}")
    return "\n".join(lines)
